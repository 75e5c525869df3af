"""Finding the figures in a generated text, as a reader of the report's locale reads them.

A figure is a number the text claims: `41.2`, `1,234,567`, `12.5 %`, `40-45%` (two
figures), `€2.1bn`, `450 GW`, `-3.2 percent`. Each keeps its exact span, its value with
the magnitude applied, and the decimals it was written with, because "41" claims less
than "41.2" and is traced with that much slack. What is not a claim (years, list
numbers, references, quotes from the prompt) is decided in `claims`.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass, replace

from .claims import (
    YEAR_PREPOSITIONS,
    blank_non_claims,
    is_year_shaped,
    sentence_spans,
    word_before,
)

_NBSP, _NNBSP = "\u00a0", "\u202f"
_DOT_DECIMAL = frozenset("en ja zh ko he th hi ga mt ms".split())
_DOT_GROUPED = frozenset("de nl es it pt da id tr el ro hr sl sr ca is".split())
_SPACE_GROUPED = frozenset("fr ru pl sv nb nn no fi cs sk uk hu bg lt lv et".split())
_LONG_SCALE = frozenset(_DOT_GROUPED | _SPACE_GROUPED) - {"ru", "pl", "uk", "bg", "tr", "id", "el"}


@dataclass(frozen=True)
class NumberStyle:
    """How a locale writes numbers: its decimal mark, its thousands separators, its words.

    `language` picks the magnitude and percent words ("Mrd.", "Prozent"; "billion" is
    1e12 in German and French, 1e9 in English).
    """

    decimal_mark: str = "."
    group_marks: tuple[str, ...] = (",",)
    language: str = "en"

    @classmethod
    def for_locale(cls, locale: str) -> NumberStyle:
        """`en`, `en_GB`, `de-DE`, `fr`, `de_CH` ...; ValueError for a language we do not know."""
        parts = re.split(r"[_\-.]", locale.strip().lower())
        language, region = parts[0], (parts[1] if len(parts) > 1 else "")
        if region == "ch" and language in ("de", "it"):
            return cls(".", ("’", "'"), language)
        if language in _DOT_DECIMAL:
            return cls(".", (",",), language)
        if language in _DOT_GROUPED:
            return cls(",", (".", " ", _NBSP, _NNBSP), language)
        if language in _SPACE_GROUPED:
            return cls(",", (" ", _NBSP, _NNBSP), language)
        known = ", ".join(sorted(_DOT_DECIMAL | _DOT_GROUPED | _SPACE_GROUPED))
        raise ValueError(f"unknown locale {locale!r}: use a language code such as {known}")


ENGLISH = NumberStyle()


@dataclass(frozen=True)
class Figure:
    """One number a text claims, where it is and how precisely it was written.

    `value` is signed with the magnitude applied ("1.2 million" -> 1_200_000.0);
    `decimals` is the precision as written (1 for "1.2 million"); `unit` is the unit
    word or symbol after it, or the currency before it (`GW`, `EUR/MWh`, `€`, `x`, `pp`).
    """

    start: int
    end: int
    text: str
    value: float
    decimals: int = 0
    percent: bool = False
    unit: str | None = None
    magnitude: float = 1.0
    currency: bool = False
    sentence: str = ""

    @property
    def number(self) -> float:
        """The number as written, without its magnitude word: 1.2 for "1.2 million"."""
        return self.value / self.magnitude

    @property
    def tolerance(self) -> float:
        """Half a unit of the last digit written, in the value's units: 50,000 for "1.2 million"."""
        return 0.5 * 10.0 ** -self.decimals * self.magnitude

    @property
    def bare(self) -> bool:
        """Written with nothing around it: no unit, currency, percent, magnitude or decimals."""
        return not (self.percent or self.unit or self.currency or self.decimals) and self.magnitude == 1.0


@dataclass(frozen=True)
class _Read:
    """A number as scanned, before ranges share their units and years are set aside."""

    figure: Figure
    digits: str  # the integer part as written, separators included
    grouped: bool
    signed: bool


def find_figures(text: str, style: NumberStyle = ENGLISH, *, prompt: str = "") -> list[Figure]:
    """Every figure `text` claims, in order; `prompt` lets a quotation from it go unchecked.

    Not claims: years ("in 2030", "2015-2020", "2015-30", "the 2030s"), list and heading
    numbers, references ("Table 2", "Section 3", "Scope 1", "#4"), footnotes ("[1]"),
    days of a date ("12 April"), ordinals ("1st"), numbers inside identifiers ("CO2",
    "PM2.5", "gpt-5", "Q3", "v1.2.3"), settings ("max_tokens=800"), code, links, and
    quotations found in the prompt.
    """
    return _with_sentences(text, _claims(text, blank_non_claims(text, prompt), style))


def written_figures(text: str, style: NumberStyle = ENGLISH) -> list[Figure]:
    """The numbers written in a text a task was given (a dependency's, its prompt), with their units.

    A quicker read than `find_figures`, for long prompts: a source may back a figure with
    any number it writes, so nothing is set aside but bare years, ranges do not share
    units, and a sentence is found only for the number that backs a figure (`sentence_at`).
    """
    figures = []
    for match in _number_pattern(style).finditer(text):
        start, digits = match.start(), match.group("int")
        if _is_setting(text, start):
            continue
        frac = match.group("frac") or match.groupdict().get("alt") or ""
        currency = start > 0 and text[start - 1] in "€$£"
        percent, unit, magnitude, end = _suffix(text, match.end(), currency, style)
        if end == match.end() and not frac and is_year_shaped(digits):
            continue
        number = _number(digits, frac)
        figures.append(Figure(start, end, text[start:end], number * magnitude, len(frac), percent is not None,
                              percent or unit or (text[start - 1] if currency else None), magnitude, currency))
    return figures


def sentence_at(text: str, offset: int) -> str:
    """The sentence of `text` around `offset` (sentences never cross a line, so only its line is split)."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    spans = sentence_spans(line)
    start, end = spans[max(0, bisect.bisect_right([s for s, _ in spans], offset - line_start) - 1)]
    return line[start:end].strip()


def _claims(text: str, scan: str, style: NumberStyle) -> list[Figure]:
    reads = [read for match in _number_pattern(style).finditer(scan) if (read := _read(text, scan, match, style))]
    reads = _share_range_units(scan, reads)
    return [read.figure for index, read in enumerate(reads) if not _is_year(text, reads, index)]


@functools.lru_cache(maxsize=16)
def _number_pattern(style: NumberStyle) -> re.Pattern[str]:
    groups = "".join(re.escape(mark) for mark in style.group_marks)
    decimal = re.escape(style.decimal_mark)
    grouped = rf"\d{{1,3}}(?P<sep>[{groups}])\d{{3}}(?:(?P=sep)\d{{3}})*(?!\d)"
    fraction = rf"(?:{decimal}(?P<frac>\d+))?"
    if style.decimal_mark == ",":  # "2.5" in a German text is still two and a half
        fraction = rf"(?:{decimal}(?P<frac>\d+)|\.(?P<alt>\d{{1,2}}|\d{{4,}})(?!\d))?"
    return re.compile(rf"(?<![\w])(?P<int>{grouped}|\d+){fraction}")


@functools.lru_cache(maxsize=16)
def _magnitude_pattern(style: NumberStyle) -> tuple[re.Pattern[str], dict[str, float]]:
    words = dict(_MAGNITUDES)
    if style.language in _LONG_SCALE:
        words.update({"billion": 1e12, "billions": 1e12, "billionen": 1e12})
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    pattern = re.compile(rf"(?P<space>[ \t{_NBSP}{_NNBSP}]?)(?P<word>{alternatives})(?![\w])", re.I)
    return pattern, words


_MAGNITUDES = {
    "k": 1e3, "thousand": 1e3, "thousands": 1e3, "tsd.": 1e3, "tsd": 1e3, "tausend": 1e3, "mille": 1e3,
    "m": 1e6, "mn": 1e6, "mln": 1e6, "million": 1e6, "millions": 1e6, "mio.": 1e6, "mio": 1e6,
    "millionen": 1e6,
    "bn": 1e9, "bln": 1e9, "b": 1e9, "billion": 1e9, "billions": 1e9, "mrd.": 1e9, "mrd": 1e9,
    "milliarde": 1e9, "milliarden": 1e9, "milliard": 1e9, "milliards": 1e9, "md": 1e9, "mds": 1e9,
    "tn": 1e12, "trn": 1e12, "trillion": 1e12, "trillions": 1e12, "bio.": 1e12, "billionen": 1e12,
}
#: Written straight after the digits only ("12k", "$450m", "3b"): with a space they are other words.
_ATTACHED_ONLY = frozenset({"k", "m", "b"})
#: Only after a currency ("$450m"): "450m" alone may be metres.
_CURRENCY_ONLY = frozenset({"m", "b"})

_SPACE = rf"[ \t{_NBSP}{_NNBSP}]"
_PERCENT = re.compile(
    rf"{_SPACE}?(?:(?P<points>percentage[ -]points?|pp|p\.p\.|prozentpunkte?|points? de pourcentage)(?![\w])"
    rf"|%|(?:percent|per ?cent|pct|prozent|pour ?cent|por ciento|per cento|procent)(?![\w]))",
    re.I,
)
_UNIT = re.compile(
    rf"{_SPACE}?(?P<unit>[kMGT]?Wh|[kMGT]?W[ep]?|[kMG]?t(?:CO2e?)?|tonnes?|[kMGTPE]J|Mtoe|ktoe|bcm|km|kg|°C"
    r"|EUR|USD|GBP|CHF|euros?|dollars?|€|\$|£|times|-fold|fold)(?![\w])"
)
_TIMES_ATTACHED = re.compile(r"(?P<unit>x|×)(?![\w])")
_PER_UNIT = re.compile(rf"{_SPACE}?(?:/|per{_SPACE}){_SPACE}?(?P<per>[kMGT]?Wh|t(?:CO2e?)?|[kMG]W)(?![\w])")
_BEFORE_CURRENCY = frozenset(f"€$£RDPF \t{_NBSP}{_NNBSP}")  # the last character of a currency before a number
_CURRENCY_BEFORE = re.compile(rf"(?:US\$|[€$£]|\b(?:EUR|USD|GBP|CHF){_SPACE}?)$")
_ORDINAL = re.compile(r"(?:st|nd|rd|th|er|re|e|ème|eme)(?![\w])")
_DECADE = re.compile(r"s(?![\w])")
_CURRENCY_WORDS = frozenset({"EUR", "USD", "GBP", "CHF", "€", "$", "£", "euro", "euros", "dollar", "dollars"})


def _read(text: str, scan: str, match: re.Match[str], style: NumberStyle) -> _Read | None:
    """The figure at `match`, or None when the digits belong to something else (an id, a version, a date)."""
    start, end = match.span()
    before = scan[start - 1] if start else ""
    if before in ".,:'’" and start >= 2 and scan[start - 2].isalnum():
        return None  # the tail of PM2.5, v1.2.3, 12:30
    if before == "-" and start >= 2 and scan[start - 2].isalpha():
        return None  # gpt-5, COVID-19, mid-2020s
    if _is_setting(scan, start):
        return None  # max_tokens=800: a setting, not a figure
    after = scan[end:end + 2]
    if len(after) == 2 and after[0] in ".,:" and after[1].isdigit():
        return None  # 1.2.3, 12:30
    digits, frac = match.group("int"), match.group("frac") or match.groupdict().get("alt") or ""
    if not frac and (_ORDINAL.match(scan, end) or (is_year_shaped(digits) and _DECADE.match(scan, end))):
        return None
    span_start, currency, found = start, False, None
    if start and scan[start - 1] in _BEFORE_CURRENCY:
        found = _CURRENCY_BEFORE.search(scan[max(0, start - 4):start])
    if found:
        span_start, currency = start - len(found.group(0)), True
    sign, span_start = _sign(scan, span_start)
    percent, unit, magnitude, span_end = _suffix(scan, end, currency, style)
    if span_end == end and not currency and end < len(scan) and scan[end].isalpha():
        return None  # 4o, 5G, 3D: part of a name
    if currency and unit is None:
        unit = found.group(0).strip() if found else None
    number = _number(digits, frac)
    figure = Figure(
        start=span_start, end=span_end, text=text[span_start:span_end], value=sign * number * magnitude,
        decimals=len(frac), percent=percent is not None, unit=percent or unit, magnitude=magnitude,
        currency=currency,
    )
    return _Read(figure, digits, grouped=match.group("sep") is not None, signed=sign < 0 or span_start < start)


def _number(digits: str, frac: str) -> float:
    """The value of an integer part as written (separators dropped) and its decimals."""
    whole = digits if digits.isdigit() else "".join(filter(str.isdigit, digits))
    return float(f"{whole}.{frac}" if frac else whole)


def _is_setting(text: str, start: int) -> bool:
    """`name=800`: a value given to a setting (`temperature=0.2`, `sim:plant=97.3`), not a claim."""
    return start >= 2 and text[start - 1] == "=" and (text[start - 2].isalnum() or text[start - 2] == "_")


def _sign(scan: str, start: int) -> tuple[float, int]:
    """-1 and the sign's offset for "-3.2" or "−3.2"; a dash after a number is a range, not a sign."""
    if start == 0 or scan[start - 1] not in "-−+":
        return 1.0, start
    if start >= 2 and scan[start - 2] not in " \t\n([:;=/":
        return 1.0, start  # 40-45: a range
    previous = scan[:start - 1].rstrip(" \t")
    if previous and (previous[-1].isdigit() or previous[-1] == "%"):
        return 1.0, start  # 40 - 45: a range too
    return (1.0 if scan[start - 1] == "+" else -1.0), start - 1


def _suffix(scan: str, end: int, currency: bool, style: NumberStyle) -> tuple[str | None, str | None, float, int]:
    """(percent kind, unit, magnitude, end) of what follows the digits: `%`, `bn`, `GW`, `EUR/MWh`."""
    if match := _PERCENT.match(scan, end):
        return ("pp" if match.group("points") else "%"), None, 1.0, match.end()
    magnitude, position = 1.0, end
    pattern, words = _magnitude_pattern(style)
    if (match := pattern.match(scan, end)) and _magnitude_applies(match, currency):
        magnitude, position = words[match.group("word").lower()], match.end()
    unit = None
    if match := (_TIMES_ATTACHED.match(scan, position) or _UNIT.match(scan, position)):
        unit, position = match.group("unit"), match.end()
        if unit in ("tonne", "tonnes"):
            unit = "t"
    if (currency or unit in _CURRENCY_WORDS) and (per := _PER_UNIT.match(scan, position)):
        unit, position = f"{unit or 'EUR'}/{per.group('per')}", per.end()
    return None, unit, magnitude, position


def _magnitude_applies(match: re.Match[str], currency: bool) -> bool:
    word = match.group("word").lower()
    if word in _ATTACHED_ONLY and match.group("space"):
        return False
    return word not in _CURRENCY_ONLY or currency


_RANGE_GAP = re.compile(r"^[ \t]?[-–—][ \t]?$|^[ \t]+(?:to|bis|à|a)[ \t]+$")
_BETWEEN_GAP = re.compile(r"^[ \t]+(?:and|und|et|y|e)[ \t]+$")
_BETWEEN = frozenset({"between", "zwischen", "entre", "tra", "fra"})


def _share_range_units(scan: str, reads: list[_Read]) -> list[_Read]:
    """`40-45%`, `2.1 to 2.4 GW`, `between 1.2 and 1.5 million`: the first end takes the second's unit."""
    shared = list(reads)
    for index in range(len(shared) - 1):
        first, second = shared[index].figure, shared[index + 1].figure
        gap = scan[first.end:second.start]
        is_range = _RANGE_GAP.match(gap) or (
            _BETWEEN_GAP.match(gap) and word_before(scan, first.start) in _BETWEEN
        )
        if not is_range or first.percent or first.unit or first.magnitude != 1.0:
            continue
        if is_year_shaped(shared[index].digits) and not is_year_shaped(shared[index + 1].digits):
            continue  # "in 2015 to 100 TWh": a year, then a figure
        figure = replace(first, percent=second.percent, unit=second.unit, magnitude=second.magnitude,
                         value=first.value * second.magnitude, currency=first.currency or second.currency)
        shared[index] = replace(shared[index], figure=figure)
    return shared


def _is_year(text: str, reads: list[_Read], index: int) -> bool:
    """A year, not a claim: four bare digits 1800-2100, or after "in"/"by"/"since" whatever follows.

    "2030 TWh" with no preposition before it is a claim (a value that happens to
    look like a year); the 30 of "2015-30" or "2023/24" is a year too.
    """
    read, figure = reads[index], reads[index].figure
    if read.grouped or read.signed or figure.decimals or figure.percent:
        return False
    if is_year_shaped(read.digits):
        return figure.bare or word_before(text, figure.start) in YEAR_PREPOSITIONS
    if len(read.digits) == 2 and figure.bare and index > 0:
        previous = reads[index - 1]
        return is_year_shaped(previous.digits) and text[previous.figure.end:figure.start] in ("-", "–", "/")
    return False


def _with_sentences(text: str, figures: list[Figure]) -> list[Figure]:
    spans = sentence_spans(text)
    starts = [start for start, _ in spans]
    placed = []
    for figure in figures:
        start, end = spans[max(0, bisect.bisect_right(starts, figure.start) - 1)]
        placed.append(replace(figure, sentence=text[start:end].strip()))
    return placed
