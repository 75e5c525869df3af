"""A word-level diff of two texts, as a reader wants to see it: `to [-52-]{+61+} (B)`.

Pure. The texts are cut into tokens that keep every character (words, numbers such as
`1,234.5` or `41%`, runs of whitespace, single punctuation marks), so the pieces of a diff
put back together give exactly the old text and exactly the new one: the Word tracked
changes, changes.md and the HTML page are all built from the same pieces and lose nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Op", "Piece", "changed_words", "clip", "hunks", "new_text", "old_text", "tokens", "word_diff"]

Op = Literal["equal", "delete", "insert"]

# A number (with its thousands separators, decimals and a percent sign) is one token, so
# `41.2` -> `45.0` is one change, not three; then words, whitespace, any other character.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*%?|\w+|\s+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Piece:
    """A run of text that both sides share (`equal`), or that only the old or the new has."""

    op: Op
    text: str


def tokens(text: str) -> list[str]:
    """`text` as diff tokens; `"".join(tokens(text)) == text` always."""
    return _TOKEN.findall(text)


def word_diff(old: str, new: str) -> tuple[Piece, ...]:
    """The pieces that turn `old` into `new`, at word level.

    A change is one deletion followed by one insertion (either may be absent). A stretch
    of whitespace alone between two changes is folded into them, so `a b c` -> `x y z`
    reads as one replacement rather than three interleaved ones.
    """
    if old == new:
        return (Piece("equal", old),) if old else ()
    a, b = tokens(old), tokens(new)
    raw: list[tuple[Op, str, str]] = []  # (op, old text, new text)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        gone, came = "".join(a[i1:i2]), "".join(b[j1:j2])
        raw.append(("equal", gone, came) if tag == "equal" else ("delete", gone, came))
    return _pieces(_fold_blanks(raw))


def _fold_blanks(raw: Sequence[tuple[Op, str, str]]) -> list[tuple[Op, str, str]]:
    """Merge change, whitespace-only equal stretch, change into one change."""
    merged: list[tuple[Op, str, str]] = []
    for index, item in enumerate(raw):
        op, gone, came = item
        between_changes = (
            op == "equal" and not gone.strip() and 0 < index < len(raw) - 1
            and raw[index - 1][0] != "equal" and raw[index + 1][0] != "equal"
        )
        if (op != "equal" or between_changes) and merged and merged[-1][0] != "equal":
            _, before_gone, before_came = merged.pop()
            merged.append(("delete", before_gone + gone, before_came + came))
        elif between_changes:
            merged.append(("delete", gone, came))
        else:
            merged.append(item)
    return merged


def _pieces(raw: Sequence[tuple[Op, str, str]]) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    for op, gone, came in raw:
        if op == "equal":
            pieces.append(Piece("equal", gone))
            continue
        if gone:
            pieces.append(Piece("delete", gone))
        if came:
            pieces.append(Piece("insert", came))
    return tuple(pieces)


def old_text(pieces: Sequence[Piece]) -> str:
    """The old text back from its diff."""
    return "".join(p.text for p in pieces if p.op != "insert")


def new_text(pieces: Sequence[Piece]) -> str:
    """The new text back from its diff."""
    return "".join(p.text for p in pieces if p.op != "delete")


def changed_words(pieces: Sequence[Piece]) -> int:
    """The size of a diff in words (not spaces or punctuation): per change, the larger of the words it
    deleted and the words it inserted, so `52` -> `61` is one word changed, not two."""
    total = gone = came = 0
    for piece in (*pieces, Piece("equal", "")):
        if piece.op == "equal":
            total, gone, came = total + max(gone, came), 0, 0
        elif piece.op == "delete":
            gone += _word_count(piece.text)
        else:
            came += _word_count(piece.text)
    return total


def hunks(pieces: Sequence[Piece], *, context: int = 8) -> list[tuple[Piece, ...]]:
    """The changes with up to `context` words of shared text either side, each a tuple of pieces;
    changes closer than twice the context share one hunk. A reader of a 600-word section sees
    the sentences that moved, not the whole section."""
    changed = [i for i, p in enumerate(pieces) if p.op != "equal"]
    if not changed:
        return []
    groups: list[list[int]] = [[changed[0]]]
    for index in changed[1:]:
        gap = pieces[groups[-1][-1] + 1 : index]
        if all(p.op != "equal" for p in gap) or sum(_word_count(p.text) for p in gap) <= 2 * context:
            groups[-1].append(index)
        else:
            groups.append([index])
    found: list[tuple[Piece, ...]] = []
    for group in groups:
        first, last = group[0], group[-1]
        before = _tail(pieces[first - 1].text, context) if first > 0 and pieces[first - 1].op == "equal" else ""
        after_piece = pieces[last + 1] if last + 1 < len(pieces) and pieces[last + 1].op == "equal" else None
        after = _head(after_piece.text, context) if after_piece is not None else ""
        middle = tuple(pieces[first : last + 1])
        found.append((*((Piece("equal", before),) if before else ()), *middle,
                      *((Piece("equal", after),) if after else ())))
    return found


def clip(hunk: Sequence[Piece], *, words: int = 40) -> tuple[Piece, ...]:
    """A hunk cut to about `words` words, `…` where it was cut: a page inserted whole reads as its
    first lines. Each deletion or insertion keeps at most half the words first, so a long
    deletion still leaves room for what replaced it. For a reader only: the text is not whole."""
    capped = [Piece(p.op, _cut(p.text, words // 2)) if p.op != "equal" else p for p in hunk]
    kept: list[Piece] = []
    left = words
    for piece in capped:
        count = _word_count(piece.text)
        if count <= left:
            kept.append(piece)
            left -= count
            continue
        if left > 0:
            kept.append(Piece(piece.op, _cut(piece.text, left)))
        else:
            kept.append(Piece("equal", " …"))
        break
    return tuple(kept)


def _cut(text: str, words: int) -> str:
    """The first `words` words of `text` and `…` when there were more; `text` itself when not."""
    parts = tokens(text)
    seen = 0
    for index, part in enumerate(parts):
        if part[0].isalnum():
            seen += 1
            if seen > words:
                return "".join(parts[:index]).rstrip() + " …"
    return text


def _word_count(text: str) -> int:
    return sum(1 for t in tokens(text) if t[0].isalnum())


def _tail(text: str, words: int) -> str:
    """The last `words` words of `text` (with what lies between them), `…` first when cut."""
    parts = tokens(text)
    seen = 0
    for index in range(len(parts) - 1, -1, -1):
        if parts[index][0].isalnum():
            seen += 1
            if seen == words:
                return ("…" if index else "") + "".join(parts[index:])
    return text


def _head(text: str, words: int) -> str:
    """The first `words` words of `text`, `…` last when cut."""
    parts = tokens(text)
    seen = 0
    for index, part in enumerate(parts):
        if part[0].isalnum():
            seen += 1
            if seen == words:
                return "".join(parts[: index + 1]) + ("…" if index + 1 < len(parts) else "")
    return text
