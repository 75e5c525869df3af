"""Make sheet text safe to use as a file name or to put in a spreadsheet cell.

Titles come from an analyst's workbook and texts from an LLM: neither is
trusted. A title must never choose where a file goes (`../../etc/x`), nor
give a name Windows refuses (`CON`); a cell must never become a formula when
the CSV or workbook is opened in Excel, LibreOffice or Google Sheets.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TypeVar

__all__ = ["FORMULA_TRIGGERS", "neutralise_cell", "objective_csv_name", "slugify"]

T = TypeVar("T")

#: A cell whose first character is one of these may be run as a formula
#: (OWASP "CSV Injection"; ASVS 1.2.10 adds the NUL character).
FORMULA_TRIGGERS: frozenset[str] = frozenset("=+-@\t\r\0")

#: Device names Windows reserves in any folder and with any extension.
_WINDOWS_RESERVED: frozenset[str] = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)
_RESERVED_SUFFIX = "-x"
_FALLBACK_SLUG = "untitled"

# Letters NFKD does not decompose into ASCII but that have a usual spelling.
_TRANSLITERATIONS = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE",
     "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D"}
)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_len: int = 60) -> str:
    """A file-name-safe slug: ASCII, lowercase, words joined by "-".

    The result matches `[a-z0-9]+(-[a-z0-9]+)*`, so it has no dots, slashes or
    backslashes and cannot be `.` or `..`; it is never empty ("untitled") and a
    Windows device name (`con`, `com1`, ...) gets a "-x" suffix. Accents are
    dropped (`Café` -> `cafe`); scripts with no ASCII spelling fall back to
    "untitled", so callers that need unique names add a number (see
    `objective_csv_name`).
    """
    if max_len < len(_FALLBACK_SLUG):
        raise ValueError(f"max_len must be at least {len(_FALLBACK_SLUG)}, got {max_len}")
    decomposed = unicodedata.normalize("NFKD", str(text).translate(_TRANSLITERATIONS))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    slug = _NOT_SLUG.sub("-", ascii_text).strip("-")
    slug = slug[:max_len].rstrip("-") or _FALLBACK_SLUG
    if slug in _WINDOWS_RESERVED:
        slug = slug[: max_len - len(_RESERVED_SUFFIX)] + _RESERVED_SUFFIX
    return slug


def objective_csv_name(number: int, title: str, *, of: int = 0) -> str:
    """`NN_<slug>.csv` for the chapter at 1-based position `number` of `of`: `03_market-size.csv`.

    The number keeps names unique and, padded to the width of the last one (two
    digits at least: `007_` in a workbook of 120 chapters), sorted in report order
    by any file listing, even when two titles share a slug.
    """
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"objective number must be a non-negative int, got {number!r}")
    width = max(2, len(str(max(number, of))))
    return f"{number:0{width}d}_{slugify(title)}.csv"


def neutralise_cell(value: T) -> T | str:
    """Prefix a formula-like string with "'" so spreadsheets show it as text.

    Only strings change: numbers, booleans and None pass through untouched, so
    a negative cost stays a number.
    """
    if isinstance(value, str) and value and value[0] in FORMULA_TRIGGERS:
        return "'" + value
    return value
