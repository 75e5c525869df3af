"""Which numbers in a text are not claims: years, list numbering, headings, references, quotes.

A reader does not check "in 2030", "1." before a list item, "## 3. Prices", "Table 2",
"[1]", "12 April" or a sentence the text quotes from its own prompt against the data,
so neither do we. `blank_non_claims` replaces those digits by spaces (offsets stay
valid) before figures are looked for; years are told apart after a number is read,
because "2030 TWh" is a claim and "in 2030" is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

YEAR_MIN, YEAR_MAX = 1800, 2100

_FENCED = re.compile(r"^ {0,3}(```|~~~).*?(?:^ {0,3}\1[^\n]*$|\Z)", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"\bhttps?://[^\s)>\]]+|\bwww\.[^\s)>\]]+")
_LINK_TARGET = re.compile(r"\]\([^)\n]*\)")
_FOOTNOTE = re.compile(r"\[\^?\d+\]|\^\d+\b")
_LIST_NUMBER = re.compile(r"^[ \t]*(?:>[ \t]*)*(\d{1,3})[.)](?=[ \t])", re.M)
_HEADING_NUMBER = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+((?:\d+\.)*\d+)\.?(?=[ \t])", re.M)
_BOLD_HEADING_NUMBER = re.compile(r"^[ \t]*\*\*((?:\d+\.)*\d+)\.?[ \t]", re.M)
_ENUMERATOR = re.compile(r"\((\d)\)")
_REFERENCE = re.compile(
    r"\b(?:tables?|tab\.|figures?|fig\.|charts?|exhibits?|sections?|sec\.|chapters?|ch\.|parts?|annex|"
    r"appendix|steps?|phases?|stages?|scopes?|tiers?|articles?|art\.|pages?|p\.|pp\.|no\.|nr\.|ref\.?|id|"
    r"version|items?|options?|questions?|tabelle|abbildung|abb\.|abschnitt|kapitel|anhang|seite|tableau|"
    r"graphique|chapitre|annexe)[ \t]?#?[ \t]?"
    r"((?:\d+\.)*\d+(?:[ \t]?(?:[-–]|and|to|&|,|und|et)[ \t]?(?:\d+\.)*\d+)*)",
    re.I,
)
_HASH_NUMBER = re.compile(r"(?<![\w&])#(\d+)\b")
_MONTHS = (
    r"(?:jan(?:uary|uar|vier)?|feb(?:ruary|ruar)?|févr(?:ier)?|mar(?:ch)?|märz|mars|apr(?:il)?|avril|may|mai|"
    r"jun(?:e|i)?|juin|jul(?:y|i)?|juil(?:let)?|aug(?:ust)?|août|sep(?:t|tember)?|sept(?:embre)?|"
    r"oct(?:ober)?|okt(?:ober)?|octobre|nov(?:ember|embre)?|dec(?:ember)?|dez(?:ember)?|déc(?:embre)?)\.?"
)
_DAY_BEFORE_MONTH = re.compile(rf"(?<![\d.,])\b(\d{{1,2}})(?:st|nd|rd|th|er)?\.?[ \t]+{_MONTHS}\b", re.I)
_DAY_AFTER_MONTH = re.compile(rf"\b{_MONTHS}[ \t]+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![.,]\d)", re.I)
_MONTH = re.compile(rf"\b{_MONTHS}\b", re.I)
_DATES = (_DAY_BEFORE_MONTH, _DAY_AFTER_MONTH)
#: Spans blanked whole, each with the characters without which it cannot occur.
_WHOLE = ((_FENCED, ("```", "~~~")), (_INLINE_CODE, ("`",)), (_URL, ("http", "www.")), (_LINK_TARGET, ("](",)),
          (_FOOTNOTE, ("[", "^")))
#: Spans whose number alone is blanked ("Table 2": the 2).
_NUMBER_ONLY = ((_LIST_NUMBER, (".", ")")), (_HEADING_NUMBER, ("#",)), (_BOLD_HEADING_NUMBER, ("**",)),
                (_ENUMERATOR, ("(",)), (_REFERENCE, ()), (_HASH_NUMBER, ("#",)), (_DAY_BEFORE_MONTH, ()),
                (_DAY_AFTER_MONTH, ()))
_QUOTED = re.compile(r"“([^”\n]{1,2000})”|\"([^\"\n]{1,2000})\"|„([^“\n]{1,2000})“|«([^»\n]{1,2000})»")
_ELLIPSIS = re.compile(r"(?:\.\.\.|…)\s*$")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?][\"”’)\]]*[ \t]+(?=[\"“(\[*_]*[A-Z0-9ÄÖÜÉÈÀ€$£])")
_ABBREVIATION = re.compile(
    r"(?:\b(?:e\.g|i\.e|approx|vs|ca|cf|incl|excl|etc|Mio|Mrd|Tsd|Nr|No|bzw|z\.B|u\.a|Fig|Tab|Abb|Dr|Mr|Ms|Mrs|"
    r"St|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|p|pp|Art|Sec|Ch)|\b[A-Z])$"
)
#: Words after which a four-digit number is a year even with a unit after it ("in 2030 EUR prices");
#: not "to", "of" or "and": "rose to 2030 TWh" is a claim.
YEAR_PREPOSITIONS = frozenset(
    "in by since until till between after before during through "
    "im bis seit ab nach vor zwischen en depuis jusqu'en avant après entre".split()
)


def blank_non_claims(text: str, prompt: str = "") -> str:
    """`text` with the digits of every non-claim replaced by spaces, offsets unchanged.

    Quoted text counts as a quotation only when it is in the prompt (whitespace and a
    closing ellipsis aside): a model quoting a figure nobody gave it is still claiming it.
    """
    chars = list(text)
    for start, end in _non_claim_spans(text, prompt):
        for index in range(start, end):
            if chars[index].isdigit():
                chars[index] = " "
    return "".join(chars)


def _non_claim_spans(text: str, prompt: str) -> Iterator[tuple[int, int]]:
    for pattern, marks in _WHOLE:
        if any(mark in text for mark in marks):  # most texts have no code, link or footnote: skip the scan
            for match in pattern.finditer(text):
                yield match.span()
    dated = _MONTH.search(text) is not None
    for pattern, marks in _NUMBER_ONLY:
        if (not marks or any(mark in text for mark in marks)) and (dated or pattern not in _DATES):
            for match in pattern.finditer(text):
                yield match.span(1)
    if prompt:
        yield from _quotes_from(text, prompt)


def _quotes_from(text: str, prompt: str) -> Iterator[tuple[int, int]]:
    """Spans of quoted passages that the prompt contains word for word."""
    flat_prompt = _SPACES.sub(" ", prompt)
    for match in _QUOTED.finditer(text):
        group = next(index for index in range(1, 5) if match.group(index) is not None)
        quoted = _SPACES.sub(" ", _ELLIPSIS.sub("", match.group(group))).strip()
        if quoted and quoted in flat_prompt:
            yield match.span(group)


def is_year_shaped(digits: str) -> bool:
    """Four digits from 1800 to 2100: what a year looks like when nothing else is written with it."""
    return len(digits) == 4 and digits.isdigit() and YEAR_MIN <= int(digits) <= YEAR_MAX


def word_before(text: str, position: int) -> str:
    """The word just before `position`, lower case ("" at the start)."""
    match = re.search(r"([\w.']+)[ \t]+$", text[max(0, position - 20):position])
    return match.group(1).lower() if match else ""


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: a line is split at `. ! ?` before a capital, not after `e.g.`."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.split("\n"):
        start = 0
        for match in _SENTENCE_END.finditer(line):
            if _ABBREVIATION.search(line[: match.start()]):
                continue
            spans.append((offset + start, offset + match.start() + 1))
            start = match.end()
        spans.append((offset + start, offset + len(line)))
        offset += len(line) + 1
    return spans
