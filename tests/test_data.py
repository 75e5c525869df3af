"""Data sources: the declared filter language, loading, Markdown, and the shared cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from report_pipeline.models import DataSource
from report_pipeline.workbook.data import (
    AllOf,
    AnyOf,
    Comparison,
    DataSourceError,
    DataStore,
    Literal,
    Membership,
    apply_filter,
    check_source,
    filter_columns,
    load_frame,
    parse_filter,
    source_problems,
    to_markdown,
)


@pytest.fixture
def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": ["North", "South", "South East", "North", "West"],
            "year": [2019, 2020, 2021, 2022, 2023],
            "unit price": [9.0, 10.5, 100.0, 50.0, 7.25],
            "code": ["007", "10", "9", "100", "abc"],
        }
    )


@pytest.fixture
def sales_csv(tmp_path: Path) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text("region,month,sales\nNorth,1,10\nSouth,1,20.5\nNorth,2,30\nSouth,2,5\n", encoding="utf-8")
    return path


@pytest.fixture
def sales_xlsx(tmp_path: Path) -> Path:
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        pd.DataFrame({"a": [1, 2, 3]}).to_excel(writer, sheet_name="First", index=False)
        pd.DataFrame(
            {"month": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]), "sales": [1.5, 2.5, 3.5]}
        ).to_excel(writer, sheet_name="Monthly", index=False)
    return path


def rows(frame: pd.DataFrame, column: str) -> list:
    return frame[column].tolist()


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("year >= 2020", AnyOf((AllOf((Comparison("year", ">=", Literal("2020", 2020.0)),)),))),
        (
            'region == "South East"',
            AnyOf((AllOf((Comparison("region", "==", Literal("South East", None, quoted=True)),)),)),
        ),
        ("`unit price` < 9.5", AnyOf((AllOf((Comparison("unit price", "<", Literal("9.5", 9.5)),)),))),
        (
            "region in (North, 'South East', 3)",
            AnyOf(
                (
                    AllOf(
                        (
                            Membership(
                                "region",
                                (Literal("North"), Literal("South East", None, quoted=True), Literal("3", 3.0)),
                            ),
                        )
                    ),
                )
            ),
        ),
        (
            "a == 1 and b == 2 or c == 3",
            AnyOf(
                (
                    AllOf((Comparison("a", "==", Literal("1", 1.0)), Comparison("b", "==", Literal("2", 2.0)))),
                    AllOf((Comparison("c", "==", Literal("3", 3.0)),)),
                )
            ),
        ),
        ("d >= 2024-01-31", AnyOf((AllOf((Comparison("d", ">=", Literal("2024-01-31")),)),))),
        ("x != -1.5e3", AnyOf((AllOf((Comparison("x", "!=", Literal("-1.5e3", -1500.0)),)),))),
    ],
)
def test_filters_parse_into_the_declared_ast(text: str, expected: AnyOf) -> None:
    assert parse_filter(text) == expected


def test_keywords_are_case_insensitive() -> None:
    assert parse_filter("a == 1 AND b IN (2) Or c == 3") == parse_filter("a == 1 and b in (2) or c == 3")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "the filter is empty"),
        ("year = 2020", "write '=='"),
        ("year <> 2020", "write '!='"),
        ("year >> 2020", "expected a value after year >"),
        ("year 2020", "expected an operator after column 'year', found '2020'"),
        ("year >=", "expected a value after year >=, found the end"),
        ('region == "North', "unclosed quote"),
        ("region in North", "expected '(' after in"),
        ("region in (North South)", "expected ',' or ')'"),
        ("a == 1 b == 2", "expected `and` or `or` before 'b'"),
        ("a == 1 and", "expected a column name, found the end"),
        ("== 3", "expected a column name"),
        ("`` == 3", "empty column name"),
        ("x == and", "expected a value after x =="),
    ],
)
def test_bad_filters_say_what_is_wrong_and_show_the_syntax(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_filter(text)
    assert says in str(caught.value)
    assert "Syntax: column OP value" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo hacked') == 0",
        "year > 1; import os",
        "len(region) > 2",
        "year > (1)",
        "not year > 1",
    ],
)
def test_code_in_a_filter_is_a_syntax_error_never_run(text: str) -> None:
    with pytest.raises(ValueError, match="bad filter"):
        parse_filter(text)


def test_code_shaped_words_are_only_column_names(sales: pd.DataFrame) -> None:
    expression = parse_filter("year.__class__ == 1")
    assert filter_columns(expression) == ["year.__class__"]
    with pytest.raises(ValueError, match="filter uses column 'year.__class__', which the file does not have"):
        apply_filter(sales, expression)


def test_filter_columns_lists_each_column_once_in_order() -> None:
    assert filter_columns(parse_filter("b > 1 and a == 2 or b < 0")) == ["b", "a"]


# -- applying -------------------------------------------------------------------------------


def test_numeric_column_compares_numerically_not_as_text(sales: pd.DataFrame) -> None:
    # as text, "100.0" < "50.0"; as numbers it is not
    assert rows(apply_filter(sales, parse_filter("`unit price` > 20")), "unit price") == [100.0, 50.0]


def test_text_equality_and_quoted_values_with_spaces(sales: pd.DataFrame) -> None:
    assert rows(apply_filter(sales, parse_filter('region == "South East"')), "year") == [2021]
    assert rows(apply_filter(sales, parse_filter("region != North")), "year") == [2020, 2021, 2023]


def test_in_list_mixes_bare_and_quoted_values(sales: pd.DataFrame) -> None:
    assert rows(apply_filter(sales, parse_filter("region in (West, 'South East')")), "year") == [2021, 2023]


def test_and_binds_tighter_than_or(sales: pd.DataFrame) -> None:
    result = apply_filter(sales, parse_filter("region == North and year > 2020 or region == West"))
    assert rows(result, "year") == [2022, 2023]


def test_text_column_of_numbers_compares_as_numbers_and_as_text(sales: pd.DataFrame) -> None:
    assert rows(apply_filter(sales, parse_filter("code > 9")), "code") == ["10", "100"]
    assert rows(apply_filter(sales, parse_filter("code == 007")), "code") == ["007"]
    assert rows(apply_filter(sales, parse_filter("code == 7")), "code") == ["007"]
    assert rows(apply_filter(sales, parse_filter("code != 7")), "code") == ["10", "9", "100", "abc"]


def test_filtered_rows_are_renumbered(sales: pd.DataFrame) -> None:
    assert list(apply_filter(sales, parse_filter("year > 2021")).index) == [0, 1]


def test_unknown_filter_column_names_the_columns_there_are(sales: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"filter uses column 'regoin'.*it has: region, year, unit price, code"):
        apply_filter(sales, parse_filter("regoin == North"))


def test_numeric_column_against_a_word_is_an_error(sales: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="column 'year' holds numbers: compare it with a number, not 'recent'"):
        apply_filter(sales, parse_filter("year == recent"))


def test_date_column_compares_with_iso_dates(sales_xlsx: Path) -> None:
    frame = load_frame(DataSource(name="m", path=sales_xlsx, sheet="Monthly", filter="month >= 2024-02-01"))
    assert rows(frame, "sales") == [2.5, 3.5]


def test_date_column_against_a_non_date_is_an_error(sales_xlsx: Path) -> None:
    with pytest.raises(DataSourceError, match="holds dates"):
        load_frame(DataSource(name="m", path=sales_xlsx, sheet="Monthly", filter="month > soon"))


def test_boolean_column_compares_with_true_and_false() -> None:
    frame = pd.DataFrame({"ok": [True, False, True], "n": [1, 2, 3]})
    assert rows(apply_filter(frame, parse_filter("ok == true")), "n") == [1, 3]
    assert rows(apply_filter(frame, parse_filter("ok != TRUE")), "n") == [2]
    with pytest.raises(ValueError, match="holds TRUE/FALSE"):
        apply_filter(frame, parse_filter("ok > 0"))


def test_missing_values_never_match_a_comparison() -> None:
    frame = pd.DataFrame({"v": [1.0, None, 3.0], "t": ["a", None, "b"]})
    assert rows(apply_filter(frame, parse_filter("v >= 1")), "v") == [1.0, 3.0]
    assert rows(apply_filter(frame, parse_filter("t == a")), "v") == [1.0]


# -- loading ---------------------------------------------------------------------------------


def test_csv_is_filtered_then_trimmed_to_the_named_columns(sales_csv: Path) -> None:
    source = DataSource(name="s", path=sales_csv, columns=("month", "sales"), filter="region == North")
    frame = load_frame(source)
    assert list(frame.columns) == ["month", "sales"]
    assert rows(frame, "sales") == [10, 30]


def test_xlsx_reads_the_named_sheet_or_the_first(sales_xlsx: Path) -> None:
    assert list(load_frame(DataSource(name="b", path=sales_xlsx)).columns) == ["a"]
    assert list(load_frame(DataSource(name="b", path=sales_xlsx, sheet="Monthly")).columns) == ["month", "sales"]


def test_wrong_sheet_name_lists_the_sheets_there_are(sales_xlsx: Path) -> None:
    with pytest.raises(DataSourceError, match="book.xlsx has no sheet 'Montly' \\(it has: First, Monthly\\)") as caught:
        load_frame(DataSource(name="b", path=sales_xlsx, sheet="Montly"))
    assert caught.value.column == "sheet"


def test_missing_file_says_paths_start_at_the_workbook(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="file not found: .*nope.csv \\(a relative path starts at the workbook's folder\\)"):
        load_frame(DataSource(name="n", path=tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("notes.txt", b"a,b\n1,2\n", "unsupported file type '.txt'"),
        ("empty.csv", b"", "empty.csv is empty: it needs a header row"),
        ("fake.xlsx", b"this is not a zip", "cannot read it as an Excel workbook"),
    ],
)
def test_unreadable_files_are_data_source_errors(tmp_path: Path, name: str, content: bytes, says: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataSourceError, match=says):
        load_frame(DataSource(name="x", path=path))


def test_csv_with_a_sheet_name_is_an_error(sales_csv: Path) -> None:
    with pytest.raises(DataSourceError, match="is a CSV file: clear the sheet column"):
        load_frame(DataSource(name="s", path=sales_csv, sheet="Sheet1"))


def test_excel_csv_byte_order_mark_and_cp1252_are_read(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffname,value\nx,1\n".encode("utf-8"))
    assert list(load_frame(DataSource(name="b", path=bom)).columns) == ["name", "value"]
    legacy = tmp_path / "legacy.csv"
    legacy.write_bytes("name,value\ncaf\xe9,1\n".encode("cp1252"))
    assert rows(load_frame(DataSource(name="l", path=legacy)), "name") == ["café"]


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("region;month;sales\nNorth;1;10\nSouth;1;20\n", ";"),  # European Excel's "CSV"
        ("region\tmonth\tsales\nNorth\t1\t10\nSouth\t1\t20\n", "\t"),
        ("region|month|sales\nNorth|1|10\nSouth|1|20\n", "|"),
        ("region,month,sales\nNorth,1,10\nSouth,1,20\n", ","),
    ],
)
def test_the_delimiter_of_a_csv_is_detected(tmp_path: Path, text: str, delimiter: str) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(text, encoding="utf-8")
    frame = load_frame(DataSource(name="s", path=path, filter="sales > 15"))
    assert list(frame.columns) == ["region", "month", "sales"], delimiter
    assert rows(frame, "region") == ["South"]


def test_a_semicolon_csv_with_decimal_commas_reads_numbers(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_bytes("Produkt;Preis;Menge\nKäse;2,50;3\nBrot;1,20;10\nWein;12;1\n".encode("cp1252"))
    frame = load_frame(DataSource(name="p", path=path, filter="Preis > 2"))
    assert rows(frame, "Produkt") == ["Käse", "Wein"]
    assert rows(frame, "Preis") == [2.5, 12.0]


def test_a_comma_csv_with_semicolons_inside_its_values_stays_comma_separated(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('name,notes\nx,"a; b; c"\ny,d;e\nz,plain\n', encoding="utf-8")
    frame = load_frame(DataSource(name="n", path=path))
    assert list(frame.columns) == ["name", "notes"]
    assert rows(frame, "notes") == ["a; b; c", "d;e", "plain"]


def test_a_one_column_csv_is_one_column(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("name\nAda\nGrace\n", encoding="utf-8")
    assert rows(load_frame(DataSource(name="n", path=path)), "name") == ["Ada", "Grace"]


def test_an_old_or_password_protected_excel_data_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "numbers.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(DataSourceError, match="saved as .xls or protected with a password — open it in Excel and save an unprotected copy as .xlsx"):
        load_frame(DataSource(name="n", path=path))


def test_header_spaces_are_stripped(tmp_path: Path) -> None:
    path = tmp_path / "spaced.csv"
    path.write_text(" region , sales \nN,1\n", encoding="utf-8")
    assert list(load_frame(DataSource(name="s", path=path, columns=("sales",))).columns) == ["sales"]


def test_unknown_columns_are_named(sales_csv: Path) -> None:
    with pytest.raises(DataSourceError, match="column 'profit' not in the file") as caught:
        load_frame(DataSource(name="s", path=sales_csv, columns=("sales", "profit")))
    assert caught.value.column == "columns"


# -- check_source ----------------------------------------------------------------------------


def test_check_source_is_empty_for_a_good_source(sales_csv: Path) -> None:
    source = DataSource(name="s", path=sales_csv, columns=("month", "sales"), filter="sales > 5", chart="line", x="month", y=("sales",))
    assert check_source(source) == []


def test_check_source_reports_each_problem_with_its_column(sales_csv: Path) -> None:
    source = DataSource(
        name="s", path=sales_csv, columns=("month", "sales", "profit"), filter="regoin == North", chart="bar", x="day", y=("sales", "cost")
    )
    found = source_problems(source)
    assert [column for column, _ in found] == ["columns", "filter", "x", "y"]
    assert "column 'profit' not in sales.csv" in found[0][1]
    assert "chart y column 'cost'" in found[3][1]


def test_check_source_reports_a_bad_filter_even_when_the_file_is_missing(tmp_path: Path) -> None:
    found = source_problems(DataSource(name="s", path=tmp_path / "gone.csv", filter="a >> 1"))
    assert [column for column, _ in found] == ["filter", "path"]


def test_check_source_reports_a_wrong_sheet_on_the_sheet_column(sales_xlsx: Path) -> None:
    assert source_problems(DataSource(name="b", path=sales_xlsx, sheet="Nope"))[0][0] == "sheet"


# -- Markdown ----------------------------------------------------------------------------------


def test_markdown_is_a_github_table_with_numbers_right_aligned() -> None:
    frame = pd.DataFrame({"region": ["North", "South"], "sales": [10, 20]})
    assert to_markdown(frame) == "| region | sales |\n| --- | ---: |\n| North | 10 |\n| South | 20 |"


def test_markdown_escapes_pipes_and_flattens_new_lines() -> None:
    frame = pd.DataFrame({"a|b": ["x | y", "line1\nline2"]})
    assert to_markdown(frame).splitlines() == ["| a\\|b |", "| --- |", "| x \\| y |", "| line1 line2 |"]


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ([1.0, 2.0, None], ["1", "2", ""]),  # whole numbers made float by a blank print as ints
        ([1234.5678, 0.1], ["1234.57", "0.1"]),
        ([0.000012345, 0.012346], ["1.234e-05", "0.01235"]),
        ([2.50, 1e16], ["2.5", "1e+16"]),
    ],
)
def test_markdown_formats_floats_sensibly(values: list, shown: list[str]) -> None:
    lines = to_markdown(pd.DataFrame({"v": values})).splitlines()[2:]
    assert lines == [f"| {s} |" for s in shown]


def test_markdown_shows_dates_without_midnight() -> None:
    frame = pd.DataFrame({"d": [pd.Timestamp("2024-01-31"), pd.Timestamp("2024-02-01 12:30")]})
    assert to_markdown(frame).splitlines()[2:] == ["| 2024-01-31 |", "| 2024-02-01 12:30:00 |"]


def test_long_tables_are_cut_with_a_note_of_what_was_left_out() -> None:
    text = to_markdown(pd.DataFrame({"n": range(250)}), max_rows=200)
    lines = text.splitlines()
    assert lines[-1] == "(showing the first 200 of 250 rows; 50 rows left out)"
    assert lines[2 + 199] == "| 199 |"


def test_an_empty_table_says_so() -> None:
    assert to_markdown(pd.DataFrame({"a": []})).endswith("(no rows)")


# -- DataStore ----------------------------------------------------------------------------------


def test_each_table_loads_once_when_many_threads_ask_at_once(sales_csv: Path) -> None:
    calls: list[str] = []
    workers = 16
    gate = threading.Barrier(workers)

    def loader(source: DataSource) -> pd.DataFrame:
        calls.append(source.name)
        return load_frame(source)

    store = DataStore({"s": DataSource(name="s", path=sales_csv)}, loader=loader)

    def ask(_: int) -> str:
        gate.wait()  # release every thread at the same moment
        return store.markdown("s")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(ask, range(workers)))
    assert calls == ["s"]
    assert len(set(results)) == 1


def test_different_tables_are_cached_separately(sales_csv: Path, sales_xlsx: Path) -> None:
    calls: list[str] = []

    def loader(source: DataSource) -> pd.DataFrame:
        calls.append(source.name)
        return load_frame(source)

    store = DataStore({"a": DataSource(name="a", path=sales_csv), "b": DataSource(name="b", path=sales_xlsx)}, loader=loader)
    store.frame("b")
    store.frame("a")
    store.frame("b")
    assert calls == ["b", "a"]
    assert store.names == ("a", "b")


def test_frame_is_a_copy_so_edits_do_not_leak_to_other_callers(sales_csv: Path) -> None:
    store = DataStore({"s": DataSource(name="s", path=sales_csv)})
    first = store.frame("s")
    first.loc[0, "sales"] = -1
    assert store.frame("s").loc[0, "sales"] == 10


def test_markdown_respects_max_rows(sales_csv: Path) -> None:
    store = DataStore({"s": DataSource(name="s", path=sales_csv)}, max_rows=2)
    assert store.markdown("s").endswith("(showing the first 2 of 4 rows; 2 rows left out)")


def test_a_broken_source_is_read_once_and_fails_every_caller(tmp_path: Path) -> None:
    calls: list[str] = []

    def loader(source: DataSource) -> pd.DataFrame:
        calls.append(source.name)
        return load_frame(source)

    store = DataStore({"gone": DataSource(name="gone", path=tmp_path / "gone.csv")}, loader=loader)
    for _ in range(3):
        with pytest.raises(DataSourceError, match="data source 'gone': file not found"):
            store.markdown("gone")
    assert calls == ["gone"]


def test_unknown_table_name_lists_the_known_ones(sales_csv: Path) -> None:
    store = DataStore({"s": DataSource(name="s", path=sales_csv)})
    with pytest.raises(KeyError, match="no data source named 'x' \\(known: s\\)"):
        store.frame("x")
    assert "s" in store and "x" not in store


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DataStore({}, max_rows=0)


def test_a_file_is_parsed_once_while_its_bytes_stay_the_same(tmp_path, monkeypatch):
    """Validation, the for_each check and the run read the same files before the first request."""
    from report_pipeline.workbook import data

    parsed = []
    real = data._read_file
    monkeypatch.setattr(data, "_read_file", lambda path, *rest: parsed.append(path) or real(path, *rest))
    path = tmp_path / "sales.csv"
    path.write_text("month,sales\nJan,10\n", encoding="utf-8")
    first = data.read_table(path)
    first.loc[0, "sales"] = 99  # a caller's change stays its own
    assert data.read_table(path)["sales"].tolist() == [10]
    assert len(parsed) == 1
    path.write_text("month,sales\nJan,20\n", encoding="utf-8")  # same size, saved within the same tick
    assert data.read_table(path)["sales"].tolist() == [20]
    assert len(parsed) == 2


def test_a_table_too_big_to_keep_twice_is_parsed_again(tmp_path, monkeypatch):
    from report_pipeline.workbook import data

    parsed = []
    real = data._read_file
    monkeypatch.setattr(data, "_read_file", lambda path, *rest: parsed.append(path) or real(path, *rest))
    monkeypatch.setattr(data, "_READ_KEEP_BYTES", 10)
    path = tmp_path / "big.csv"
    path.write_text("month,sales\nJan,10\nFeb,20\n", encoding="utf-8")
    assert data.read_table(path)["sales"].tolist() == data.read_table(path)["sales"].tolist() == [10, 20]
    assert len(parsed) == 2
