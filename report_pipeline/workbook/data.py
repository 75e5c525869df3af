"""Tables the prompts attach: load a `DataSource`, filter it, render it as Markdown.

The `filter` column is spreadsheet text, so it is never evaluated as code (no
`eval`, no `DataFrame.query`): it is parsed here into a tiny AST of dataclasses
and applied with plain boolean masks. The grammar, in full:

    filter     := all_of ("or" all_of)*
    all_of     := condition ("and" condition)*
    condition  := column OP value | column "in" "(" value ("," value)* ")"
    OP         := "==" | "!=" | ">" | ">=" | "<" | "<="
    column     := bare word | `back-quoted name`
    value      := number | "quoted" | 'quoted' | bare word

`and` binds tighter than `or`; there are no parentheses for grouping.

CSV files come from many Excels: the delimiter is sniffed from the first lines
(one of `, ; TAB |`, falling back to a comma), and a semicolon file, which is
what Excel writes where the comma is the decimal mark, has its `2,50` columns
read as numbers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataSourceError
from ..lazy import lazy_module
from ..models import DataSource

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")  # imported by the first workbook that has data

__all__ = [
    "ENTITY_VALUE_PREFIX",
    "bind_filter",
    "filter_entity_fields",
    "quote_filter_value",
    "AllOf",
    "AnyOf",
    "Comparison",
    "DataSourceError",
    "DataStore",
    "FILTER_SYNTAX",
    "Literal",
    "Membership",
    "apply_filter",
    "check_source",
    "filter_columns",
    "load_frame",
    "ole2_advice",
    "parse_filter",
    "read_table",
    "source_problems",
    "to_markdown",
]

DEFAULT_MAX_ROWS = 200
FILTER_SYNTAX = (
    'column OP value [and|or column OP value ...], OP one of == != > >= < <= in; '
    'e.g. region == "North" and year >= 2020, `unit price` < 9.5, region in (North, "South East")'
)
CSV_SUFFIXES = (".csv",)
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
CSV_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024
# An OLE2 compound file: an old .xls, or an .xlsx encrypted with a password (its package wrapped in one).
OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the stream name in the compound file's directory
_OLE2_SCAN_BYTES = 64 * 1024 * 1024


# -- the filter language --------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A value as written; `number` is set when the text reads as a finite number."""

    text: str
    number: float | None = None
    quoted: bool = False


@dataclass(frozen=True)
class Comparison:
    column: str
    op: str  # == != > >= < <=
    value: Literal


@dataclass(frozen=True)
class Membership:
    column: str
    values: tuple[Literal, ...]


Condition = Comparison | Membership


@dataclass(frozen=True)
class AllOf:
    """Conditions joined by `and`."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """Groups joined by `or`: the root of every parsed filter."""

    groups: tuple[AllOf, ...]


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<backquoted>`[^`]*`)
  | (?P<quoted>"[^"]*"|'[^']*')
  | (?P<op>==|!=|>=|<=|<>|=<|=>|[=<>])
  | (?P<punct>[(),])
  | (?P<word>[^\s`"'(),=!<>]+)
  | (?P<bad>.)
    """,
    re.VERBOSE,
)
_COMPARISON_OPS = ("==", "!=", ">", ">=", "<", "<=")
_OP_HINTS = {"=": "==", "<>": "!=", "=<": "<=", "=>": ">="}


@dataclass(frozen=True)
class _Token:
    kind: str  # backquoted, quoted, op, punct, word, end
    text: str
    at: int  # 0-based character position

    @property
    def keyword(self) -> str | None:
        lowered = self.text.lower()
        return lowered if self.kind == "word" and lowered in ("and", "or", "in") else None


def _filter_error(text: str, at: int, what: str) -> ValueError:
    return ValueError(f"bad filter {text!r}: {what} (at character {at + 1}). Syntax: {FILTER_SYNTAX}")


def _tokens(text: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "bad"
        if kind == "space":
            continue
        if kind == "bad":
            char = match.group()
            what = "unclosed quote" if char in "`\"'" else f"unexpected {char!r}"
            raise _filter_error(text, match.start(), what)
        tokens.append(_Token(kind, match.group(), match.start()))
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class _FilterParser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.pos]

    def _advance(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _fail(self, what: str) -> ValueError:
        return _filter_error(self.text, self.current.at, what)

    def parse(self) -> AnyOf:
        if self.current.kind == "end":
            raise self._fail("the filter is empty")
        groups = [self._all_of()]
        while self.current.keyword == "or":
            self._advance()
            groups.append(self._all_of())
        if self.current.kind != "end":
            raise self._fail(f"expected `and` or `or` before {self.current.text!r}")
        return AnyOf(tuple(groups))

    def _all_of(self) -> AllOf:
        conditions = [self._condition()]
        while self.current.keyword == "and":
            self._advance()
            conditions.append(self._condition())
        return AllOf(tuple(conditions))

    def _condition(self) -> Condition:
        column = self._column()
        token = self.current
        if token.keyword == "in":
            self._advance()
            return Membership(column, self._value_list())
        if token.kind != "op":
            found = "the end" if token.kind == "end" else repr(token.text)
            raise self._fail(f"expected an operator after column {column!r}, found {found}")
        if token.text in _OP_HINTS:
            raise self._fail(f"{token.text!r} is not an operator here: write {_OP_HINTS[token.text]!r}")
        self._advance()
        return Comparison(column, token.text, self._value(f"after {column} {token.text}"))

    def _column(self) -> str:
        token = self.current
        if token.kind == "backquoted":
            self._advance()
            name = token.text[1:-1].strip()
            if not name:
                raise _filter_error(self.text, token.at, "empty column name in back quotes")
            return name
        if token.kind == "word" and token.keyword is None:
            self._advance()
            return token.text
        found = "the end" if token.kind == "end" else repr(token.text)
        raise self._fail(f"expected a column name, found {found} (back-quote names with spaces: `my column`)")

    def _value(self, where: str) -> Literal:
        token = self.current
        if token.kind == "quoted":
            self._advance()
            return Literal(token.text[1:-1], None, quoted=True)
        if token.kind == "word" and token.keyword is None:
            self._advance()
            return Literal(token.text, _number(token.text))
        found = "the end" if token.kind == "end" else repr(token.text)
        raise self._fail(f"expected a value {where}, found {found} (quote text that is a keyword or has spaces)")

    def _value_list(self) -> tuple[Literal, ...]:
        if self.current.text != "(":
            raise self._fail("expected '(' after in: write in (a, b, \"c d\")")
        self._advance()
        values = [self._value("in the list")]
        while self.current.text == ",":
            self._advance()
            values.append(self._value("in the list"))
        if self.current.text != ")":
            raise self._fail("expected ',' or ')' in the in (...) list")
        self._advance()
        return tuple(values)


def parse_filter(text: str) -> AnyOf:
    """Parse a `filter` cell; a ValueError says what is wrong and shows the syntax."""
    return _FilterParser(text).parse()


#: `country == entity.country`: in a family run (`--each`), a value naming a field of the entity's row
ENTITY_VALUE_PREFIX = "entity."
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?\Z")


def filter_entity_fields(text: str) -> list[str]:
    """The FIELDs of every `entity.FIELD` value in a filter, in order (a ValueError for bad syntax)."""
    return [token.text[len(ENTITY_VALUE_PREFIX):] for token in _tokens(text)
            if token.kind == "word" and token.text.startswith(ENTITY_VALUE_PREFIX)]


def quote_filter_value(value: str) -> str:
    """`value` as one literal of the filter language: a plain number as it is, text in quotes.

    The language has no escapes, so text holding `"` is quoted with `'`; text holding both
    quote marks cannot be written as a literal at all, and is refused (ValueError)."""
    if _PLAIN_NUMBER.match(value):
        return value
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError(f"{value!r} holds both quote marks (\" and '), which a filter value cannot: "
                     "change the value in the entities file")


def bind_filter(text: str, values: Mapping[str, str]) -> str:
    """The filter with each `entity.FIELD` value replaced by that field's value, quoted as a literal.

    Text, never code: the filter is tokenised, only whole `entity.FIELD` value tokens are replaced
    (not text inside quotes or back quotes), and the result is parsed like any other filter."""
    pieces: list[str] = []
    end = 0
    for token in _tokens(text):
        if token.kind == "word" and token.text.startswith(ENTITY_VALUE_PREFIX):
            key = token.text[len(ENTITY_VALUE_PREFIX):]
            if key not in values:
                raise ValueError(f"entity has no field {key!r} (it has: {', '.join(values)})")
            pieces.append(text[end:token.at])
            pieces.append(quote_filter_value(values[key]))
            end = token.at + len(token.text)
    pieces.append(text[end:])
    return "".join(pieces)


def filter_columns(expression: AnyOf) -> list[str]:
    """The columns a filter reads, in the order written, without repeats."""
    names: dict[str, None] = {}
    for group in expression.groups:
        for condition in group.conditions:
            names[condition.column] = None
    return list(names)


def _compare(series: pd.Series, op: str, other: Any) -> pd.Series:
    if op == "==":
        return series == other
    if op == "!=":
        return series != other
    if op == ">":
        return series > other
    if op == ">=":
        return series >= other
    if op == "<":
        return series < other
    return series <= other


_TRUE_WORDS = {"true", "yes", "y", "1"}
_FALSE_WORDS = {"false", "no", "n", "0"}


def _condition_mask(frame: pd.DataFrame, column: str, op: str, value: Literal) -> pd.Series:
    """One comparison as a boolean mask; the column's type decides how to compare."""
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        word = value.text.strip().lower()
        if word not in _TRUE_WORDS | _FALSE_WORDS or op not in ("==", "!="):
            raise ValueError(f"column {column!r} holds TRUE/FALSE: compare it with == or != and true or false")
        return _compare(series, op, word in _TRUE_WORDS)
    if pd.api.types.is_numeric_dtype(series):
        if value.number is None:
            raise ValueError(f"column {column!r} holds numbers: compare it with a number, not {value.text!r}")
        return _compare(series, op, value.number).fillna(False).astype(bool)
    if pd.api.types.is_datetime64_any_dtype(series):
        try:
            moment = pd.Timestamp(value.text)
        except (ValueError, TypeError):
            raise ValueError(f"column {column!r} holds dates: compare it with a date like 2024-01-31, not {value.text!r}") from None
        return _compare(series, op, moment).fillna(False).astype(bool)
    text = series.astype("string").str.strip()
    if value.number is not None and not value.quoted:
        # a text column holding numbers (a messy sheet) still compares as numbers,
        # and `code == 007` still matches the text "007"
        numbers = pd.to_numeric(series, errors="coerce")
        if op in ("==", "!="):
            same = (numbers == value.number).fillna(False).astype(bool) | (text == value.text).fillna(False).astype(bool)
            return same if op == "==" else ~same
        return _compare(numbers, op, value.number).fillna(False).astype(bool)
    return _compare(text, op, value.text).fillna(op == "!=").astype(bool)


def apply_filter(frame: pd.DataFrame, expression: AnyOf) -> pd.DataFrame:
    """The rows of `frame` that match; a ValueError names an unknown column or a type clash."""
    missing = [name for name in filter_columns(expression) if name not in frame.columns]
    if missing:
        raise ValueError(
            f"filter uses column {missing[0]!r}, which the file does not have "
            f"(it has: {', '.join(map(str, frame.columns))})"
        )
    keep = pd.Series(False, index=frame.index)
    for group in expression.groups:
        group_mask = pd.Series(True, index=frame.index)
        for condition in group.conditions:
            if isinstance(condition, Membership):
                mask = pd.Series(False, index=frame.index)
                for value in condition.values:
                    mask |= _condition_mask(frame, condition.column, "==", value)
            else:
                mask = _condition_mask(frame, condition.column, condition.op, condition.value)
            group_mask &= mask
        keep |= group_mask
    return frame[keep].reset_index(drop=True)


# -- loading ----------------------------------------------------------------------------


def ole2_advice(path: Path) -> str | None:
    """What to tell a user whose "workbook" is an OLE2 compound file; None when it is not one.

    Excel wraps a password-protected .xlsx in the same container as an old .xls,
    so the signature alone cannot tell them apart; a directory entry named
    EncryptedPackage can. When it is not found (a very large file, or an .xls
    that is itself protected) the advice covers both.
    """
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(len(OLE2_SIGNATURE))
            if head != OLE2_SIGNATURE:
                return None
            body = handle.read(_OLE2_SCAN_BYTES)
    except OSError:
        return None
    if _ENCRYPTED_PACKAGE in body:
        return (
            "this workbook is protected with a password — open it in Excel and save an unprotected copy as .xlsx "
            "(File > Info > Protect Workbook > Encrypt with Password, clear the password, save)"
        )
    return (
        "this file was saved as .xls or protected with a password — open it in Excel and save an unprotected "
        "copy as .xlsx (File > Save As > Excel Workbook)"
    )


def _sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample, one of `CSV_DELIMITERS`; a comma when unsure.

    The header line must contain the delimiter sniffed, so a comma file whose
    values hold semicolons (`"a; b"`) is never split on them, and a one-column
    file stays one column.
    """
    lines = sample.splitlines()
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        sample = "\n".join(lines[:-1])  # the sample may end mid-line
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","
    header = lines[0] if lines else ""
    return delimiter if delimiter in header else ","


_DECIMAL_COMMA = re.compile(r"-?\d+(,\d+)?\Z")


def _decimal_commas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns that hold only numbers like `2,50` (and whole numbers) read as floats."""
    for name in frame.columns:
        series = frame[name]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        values = series.dropna()
        if values.empty or not all(isinstance(v, str) for v in values):
            continue
        text = values.str.strip()
        if text.str.match(_DECIMAL_COMMA).all() and text.str.contains(",", regex=False).any():
            frame[name] = pd.to_numeric(series.str.strip().str.replace(",", ".", regex=False))
    return frame


def _read_csv(path: Path, content: bytes) -> pd.DataFrame:
    head = content[:_SNIFF_BYTES]
    # utf-8-sig drops the byte-order mark Excel writes into "CSV UTF-8" files;
    # Excel's plain "CSV" on Windows is cp1252: try it before giving up
    for encoding in ("utf-8-sig", "cp1252"):
        delimiter = _sniff_delimiter(head.decode(encoding, errors="replace"))
        try:
            frame = pd.read_csv(io.BytesIO(content), encoding=encoding, sep=delimiter)
        except UnicodeDecodeError:
            continue
        return _decimal_commas(frame) if delimiter == ";" else frame
    raise DataSourceError(f"{path}: not UTF-8 text — save it as \"CSV UTF-8\"")


def _read_excel(path: Path, sheet: str | None, content: bytes) -> pd.DataFrame:
    try:
        with pd.ExcelFile(io.BytesIO(content), engine="openpyxl") as workbook:
            names = list(workbook.sheet_names)
            if sheet is not None and sheet not in names:
                raise DataSourceError(f"{path.name} has no sheet {sheet!r} (it has: {', '.join(names)})", column="sheet")
            return pd.read_excel(workbook, sheet_name=sheet if sheet is not None else 0)
    except DataSourceError:
        raise
    except Exception as error:  # zip, XML and openpyxl errors all mean "not a workbook we can read"
        advice = ole2_advice(path)
        if advice is not None:
            raise DataSourceError(f"{path}: {advice}") from None
        raise DataSourceError(f"{path}: cannot read it as an Excel workbook ({type(error).__name__}: {error})") from None


#: Files read by this process, by content: validation, the for_each check and the run's tables
#: all read the same files before the first request (the oldest goes past this many). A table
#: bigger than _READ_KEEP_BYTES is parsed again instead: a kept copy would double its memory.
_READ_KEEP = 64
_READ_KEEP_BYTES = 32 * 2**20
_read: dict[tuple[str, str | None, str], pd.DataFrame] = {}
_read_lock = threading.Lock()


def read_table(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """A CSV or XLSX file as a DataFrame with stripped, string column names (a copy of the one
    parsed before when the file's bytes are the same)."""
    path = Path(path)
    if not path.exists():
        raise DataSourceError(f"file not found: {path} (a relative path starts at the workbook's folder)")
    if path.is_dir():
        raise DataSourceError(f"{path} is a folder, not a CSV or XLSX file")
    try:
        content = path.read_bytes()  # read once: hashed for the key, then parsed, so the two agree
    except OSError as error:
        raise DataSourceError(f"cannot read {path.name}: {error.strerror or error}") from None
    key = (str(path.resolve()), sheet, hashlib.blake2b(content, digest_size=16).hexdigest())
    with _read_lock:
        kept = _read.get(key)
    if kept is None:
        kept = _read_file(path, sheet, content)
        if kept.memory_usage(index=True, deep=False).sum() > _READ_KEEP_BYTES:
            return kept
        with _read_lock:
            _read[key] = kept
            while len(_read) > _READ_KEEP:
                del _read[next(iter(_read))]
    return kept.copy()


def _read_file(path: Path, sheet: str | None, content: bytes) -> pd.DataFrame:
    """`content`, the bytes of `path`, as a DataFrame (the path names it in errors)."""
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            if sheet:
                raise DataSourceError(
                    f"{path.name} is a CSV file: clear the sheet column (only .xlsx files have sheets)", column="sheet"
                )
            frame = _read_csv(path, content)
        elif suffix in EXCEL_SUFFIXES:
            frame = _read_excel(path, sheet, content)
        else:
            raise DataSourceError(f"{path.name}: unsupported file type {suffix or '(none)'!r} — use .csv or .xlsx")
    except DataSourceError:
        raise
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{path.name} is empty: it needs a header row") from None
    except (pd.errors.ParserError, OSError, ValueError) as error:
        raise DataSourceError(f"cannot read {path.name}: {error}") from None
    frame.columns = [str(name).strip() for name in frame.columns]
    return frame


def _select_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        raise DataSourceError(
            f"{noun} {', '.join(map(repr, missing))} not in the file (it has: {', '.join(map(str, frame.columns))})",
            column="columns",
        )
    return frame[list(columns)]


def _filtered(frame: pd.DataFrame, source: DataSource) -> pd.DataFrame:
    if not source.filter:
        return frame
    try:
        return apply_filter(frame, parse_filter(source.filter))
    except ValueError as error:
        raise DataSourceError(str(error), column="filter") from None


def load_frame(source: DataSource, read: Callable[[Path, str | None], pd.DataFrame] | None = None) -> pd.DataFrame:
    """Read the file, apply `filter`, then keep only `columns` (if given).

    Filtering before selecting lets a filter use a column the report does not
    show (filter on `region`, show only `month, sales`); for columns that are
    both filtered and shown the result is the same either way. `read` replaces
    `read_table` (a family run reads each file once for all its entities).
    """
    frame = _filtered((read or read_table)(source.path, source.sheet), source)
    if source.columns:
        frame = _select_columns(frame, source.columns)
    return frame.reset_index(drop=True)


def source_problems(source: DataSource) -> list[tuple[str, str]]:
    """Every problem with one source as (data-sheet column, message), for the validator."""
    problems: list[tuple[str, str]] = []
    expression = None
    if source.filter:
        try:
            expression = parse_filter(source.filter)
        except ValueError as error:
            problems.append(("filter", str(error)))
    try:
        frame = read_table(source.path, source.sheet)
    except DataSourceError as error:
        return [*problems, (error.column, str(error))]
    for name in source.columns:
        if name not in frame.columns:
            problems.append(("columns", f"column {name!r} not in {source.path.name} (it has: {', '.join(map(str, frame.columns))})"))
    if expression is not None:
        try:
            apply_filter(frame, expression)
        except ValueError as error:
            problems.append(("filter", str(error)))
    shown = source.columns or tuple(frame.columns)
    if source.x and source.x not in shown:
        problems.append(("x", f"chart x column {source.x!r} is not in the table (it has: {', '.join(map(str, shown))})"))
    for name in source.y:
        if name not in shown:
            problems.append(("y", f"chart y column {name!r} is not in the table (it has: {', '.join(map(str, shown))})"))
    if source.shade and source.shade[0] not in shown:
        problems.append(("shade", f"column {source.shade[0]!r} is not in the table (it has: {', '.join(map(str, shown))})"))
    return problems


def check_source(source: DataSource) -> list[str]:
    """Problems loading `source` (missing file, unreadable, unknown columns, bad filter)."""
    return [message for _, message in source_problems(source)]


# -- Markdown ----------------------------------------------------------------------------


def _format_float(value: float) -> str:
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 1e15 or size < 1e-4:
        return f"{value:.4g}"
    if size >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def _format_cell(value: Any, whole: bool) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if whole else _format_float(value)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat(sep=" ")
    return str(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def _column_is_whole(series: pd.Series) -> bool:
    """A float column of whole numbers (ints made float by a blank) prints as ints."""
    if not pd.api.types.is_float_dtype(series):
        return False
    values = series.dropna()
    return bool(len(values)) and bool((values == values.round()).all()) and bool((values.abs() < 1e15).all())


def to_markdown(frame: pd.DataFrame, *, max_rows: int = DEFAULT_MAX_ROWS) -> str:
    """A GitHub-style Markdown table; numbers right-aligned, `|` escaped, long tables cut.

    Hand-written so the package does not need `tabulate`; the note under a cut
    table tells the model (and the reader) that rows are missing.
    """
    columns = list(frame.columns)
    if not columns:
        return "(empty table: no columns)"
    whole = {name: _column_is_whole(frame[name]) for name in columns}
    numeric = [pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name]) for name in columns]
    lines = [
        "| " + " | ".join(_escape(str(name)) for name in columns) + " |",
        "| " + " | ".join("---:" if right else "---" for right in numeric) + " |",
    ]
    shown = frame.head(max_rows)
    for row in shown.itertuples(index=False, name=None):
        cells = (_escape(_format_cell(value, whole[name])) for name, value in zip(columns, row, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    total = len(frame)
    if total == 0:
        lines.append("")
        lines.append("(no rows)")
    elif total > len(shown):
        lines.append("")
        lines.append(f"(showing the first {len(shown)} of {total} rows; {total - len(shown)} rows left out)")
    return "\n".join(lines)


# -- the shared cache -----------------------------------------------------------------


@dataclass
class _Entry:
    """One source's cache slot; its own lock, so different tables load in parallel."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded: bool = False
    frame: pd.DataFrame | None = None
    markdown: str | None = None
    error: str | None = None


class DataStore:
    """Loads each table at most once, however many threads ask at the same time.

    Every source gets a slot with its own lock, made up front, so no lock guards
    the dictionary and one slow file never blocks another. A failed load is
    remembered: a hundred tasks attaching a broken file read it once and each
    get a fresh `DataSourceError` with the same message.
    """

    def __init__(
        self,
        sources: Mapping[str, DataSource],
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        loader: Callable[[DataSource], pd.DataFrame] = load_frame,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self._sources = dict(sources)
        self._entries = {name: _Entry() for name in self._sources}
        self._max_rows = max_rows
        self._loader = loader

    def with_sources(self, replaced: Mapping[str, DataSource]) -> DataStore:
        """This store with some sources replaced (a family entity's own filters); the others keep
        this store's slots, so a table every entity uses loads, and turns into Markdown, once."""
        store = DataStore({**self._sources, **replaced}, max_rows=self._max_rows, loader=self._loader)
        store._entries.update({name: entry for name, entry in self._entries.items() if name not in replaced})
        return store

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def source(self, name: str) -> DataSource:
        return self._sources[self._known(name)]

    def _known(self, name: str) -> str:
        if name not in self._entries:
            known = ", ".join(self._sources) or "none"
            raise KeyError(f"no data source named {name!r} (known: {known})")
        return name

    def _load(self, name: str) -> _Entry:
        entry = self._entries[self._known(name)]
        with entry.lock:
            if not entry.loaded:
                try:
                    entry.frame = self._loader(self._sources[name])
                except Exception as error:  # remembered, re-raised as a DataSourceError below
                    entry.error = f"data source {name!r}: {error}"
                entry.loaded = True
        if entry.error is not None:
            raise DataSourceError(entry.error)
        return entry

    def frame(self, name: str) -> pd.DataFrame:
        """A copy of the table, so a caller's edits never leak into other threads."""
        entry = self._load(name)
        assert entry.frame is not None
        return entry.frame.copy()

    def markdown(self, name: str) -> str:
        """The table as Markdown, rendered once and shared (strings are immutable)."""
        entry = self._load(name)
        with entry.lock:
            if entry.markdown is None:
                assert entry.frame is not None
                entry.markdown = to_markdown(entry.frame, max_rows=self._max_rows)
            return entry.markdown
