"""Charts: real CSV files, real PNGs on disk, read back by their bytes and by matplotlib's own axes."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from report_pipeline.models import DataSource
from report_pipeline.workbook.data import DataStore, load_frame
from report_pipeline.writers.figures.chart_drawing import ChartSpec, draw_chart_png
from report_pipeline.writers.figures.charts import (
    DPI,
    FIGSIZE_IN,
    ChartRenderer,
    chart_caption,
    chart_figure,
    chart_spec,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

GENERATION = """year,region,coal,gas,wind
2015,EU,650.0,420.0,300.0
2016,EU,600.0,480.0,299.0
2017,EU,580.0,530.0,371.0
2018,EU,550.0,520.0,363.3
"""
PRICES = """year,germany_eur_mwh,france_eur_mwh
2015.0,31.6,38.5
2016.0,29.0,36.7
2017.0,34.2,45.0
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "generation.csv").write_text(GENERATION, encoding="utf-8")
    (folder / "prices.csv").write_text(PRICES, encoding="utf-8")
    return folder


@pytest.fixture
def sources(data_dir: Path) -> dict[str, DataSource]:
    generation = data_dir / "generation.csv"
    return {
        "eu_generation": DataSource("eu_generation", generation, chart="line", x="year", y=("coal", "gas", "wind")),
        "capacity": DataSource("capacity", generation, chart="bar", x="year", y=("coal", "gas", "wind")),
        "prices": DataSource(
            "prices", data_dir / "prices.csv", chart="line", x="year", y=("germany_eur_mwh", "france_eur_mwh")
        ),
        "plain": DataSource("plain", generation),
    }


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_renders_one_png_per_declared_source(tmp_path: Path, sources: dict[str, DataSource]) -> None:
    renderer = ChartRenderer(tmp_path / "run")
    store = DataStore(sources)
    images = {name: renderer.render(name, store) for name in ("eu_generation", "capacity", "prices")}

    assert {name: image.relative for name, image in images.items()} == {
        "eu_generation": "charts/eu-generation.png",
        "capacity": "charts/capacity.png",
        "prices": "charts/prices.png",
    }
    for image in images.values():
        assert image.path == tmp_path / "run" / image.relative
        assert image.path.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in (tmp_path / "run" / "charts").iterdir()) == [
        "capacity.png", "eu-generation.png", "prices.png",
    ]  # and no temporary file left beside them
    assert renderer.rendered() == list(images.values())


def test_png_is_sized_to_read_at_15_cm(tmp_path: Path, sources: dict[str, DataSource]) -> None:
    image = ChartRenderer(tmp_path).render("eu_generation", DataStore(sources))
    width, height = png_size(image.path)
    assert (width, height) == (round(FIGSIZE_IN[0] * DPI), round(FIGSIZE_IN[1] * DPI))
    assert width / (15 / 2.54) >= 150  # at least 150 dpi when placed 15 cm wide


def test_source_without_chart_is_refused(tmp_path: Path, sources: dict[str, DataSource]) -> None:
    with pytest.raises(ValueError, match="'plain' declares no chart"):
        ChartRenderer(tmp_path).render("plain", DataStore(sources))


def test_chart_is_drawn_once_when_eight_threads_ask_at_once(tmp_path: Path, sources: dict[str, DataSource]) -> None:
    drawn: list[str] = []

    def counting_drawer(path: Path, spec: ChartSpec) -> None:
        drawn.append(spec.title)
        draw_chart_png(path, spec)

    loads: list[str] = []

    def counting_loader(source: DataSource) -> pd.DataFrame:
        loads.append(source.name)
        return load_frame(source)

    store = DataStore(sources, loader=counting_loader)
    renderer = ChartRenderer(tmp_path, draw_png=counting_drawer)
    start = threading.Barrier(8)
    images = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            start.wait()
            images.append(renderer.render("eu_generation", store))
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert drawn == ["EU generation"]
    assert loads == ["eu_generation"]
    assert len(images) == 8 and len(set(images)) == 1
    assert png_size(images[0].path)


def test_different_charts_render_in_parallel_threads(tmp_path: Path, sources: dict[str, DataSource]) -> None:
    renderer = ChartRenderer(tmp_path)
    store = DataStore(sources)
    names = ["eu_generation", "capacity", "prices"] * 4
    results: dict[int, Path] = {}
    start = threading.Barrier(len(names))

    def ask(number: int, name: str) -> None:
        start.wait()
        results[number] = renderer.render(name, store).path

    threads = [threading.Thread(target=ask, args=(n, name)) for n, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({results[n] for n in range(len(names))}) == 3
    for path in set(results.values()):
        png_size(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y": ("coal", "lignite")}, r"data source 'broken': chart column 'lignite' is not in the table"),
        ({"x": "month"}, r"data source 'broken': chart column 'month' is not in the table"),
        ({"y": ("region",)}, r"data source 'broken': chart y column 'region' is not numeric \(it holds 'EU'\)"),
        ({"filter": "year > 2030"}, r"data source 'broken': the table has no rows"),
        ({"x": "region"}, r"data source 'broken': x column 'region' repeats 'EU'"),
    ],
)
def test_bad_chart_columns_raise_value_error_naming_the_source(
    tmp_path: Path, data_dir: Path, change: dict, message: str
) -> None:
    settings = {"chart": "line", "x": "year", "y": ("coal",), **change}
    source = DataSource("broken", data_dir / "generation.csv", **settings)
    renderer = ChartRenderer(tmp_path)
    with pytest.raises(ValueError, match=message):
        renderer.render("broken", DataStore({"broken": source}))
    assert not (tmp_path / "charts").exists() or not any((tmp_path / "charts").iterdir())


def test_a_failed_chart_is_remembered_and_reported_again(tmp_path: Path, data_dir: Path) -> None:
    source = DataSource("broken", data_dir / "generation.csv", chart="bar", x="year", y=("lignite",))
    loads: list[str] = []

    def loader(source: DataSource) -> pd.DataFrame:
        loads.append(source.name)
        return load_frame(source)

    renderer = ChartRenderer(tmp_path)
    store = DataStore({"broken": source}, loader=loader)
    messages = []
    for _ in range(3):
        with pytest.raises(ValueError) as caught:
            renderer.render("broken", store)
        messages.append(str(caught.value))
    assert len(set(messages)) == 1 and "'broken'" in messages[0]
    assert loads == ["broken"]


def test_unreadable_file_raises_value_error_naming_the_source(tmp_path: Path) -> None:
    source = DataSource("gone", tmp_path / "missing.csv", chart="line", x="year", y=("coal",))
    with pytest.raises(ValueError, match="data source 'gone'.*file not found"):
        ChartRenderer(tmp_path).render("gone", DataStore({"gone": source}))


def test_names_sharing_a_slug_get_their_own_files(tmp_path: Path, data_dir: Path) -> None:
    path = data_dir / "generation.csv"
    store = DataStore(
        {
            "EU gen": DataSource("EU gen", path, chart="line", x="year", y=("coal",)),
            "eu_gen": DataSource("eu_gen", path, chart="bar", x="year", y=("gas",)),
        }
    )
    renderer = ChartRenderer(tmp_path)
    assert renderer.render("EU gen", store).relative == "charts/eu-gen.png"
    assert renderer.render("eu_gen", store).relative == "charts/eu-gen-2.png"


# --- what the figure shows -------------------------------------------------------------------


def drawn_axes(source: DataSource):
    figure = chart_figure(source, load_frame(source))
    figure.canvas.draw()
    return figure, figure.axes[0]


def test_year_axis_keeps_whole_years(sources: dict[str, DataSource]) -> None:
    for name in ("eu_generation", "prices"):  # int years, and years read as 2015.0
        _, ax = drawn_axes(sources[name])
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels and all(label.isdigit() and len(label) == 4 for label in labels), labels


def test_line_chart_has_a_line_per_y_column_title_labels_and_legend(sources: dict[str, DataSource]) -> None:
    figure, ax = drawn_axes(sources["eu_generation"])
    assert [line.get_label() for line in ax.get_lines()] == ["Coal", "Gas", "Wind"]
    assert list(ax.get_lines()[0].get_xdata()) == [2015, 2016, 2017, 2018]
    assert ax.get_title(loc="left") == "EU generation"  # a readable name, not the table's snake_case
    assert ax.get_xlabel() == "Year"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["Coal", "Gas", "Wind"]


def test_shared_unit_suffix_becomes_the_y_axis_label(sources: dict[str, DataSource]) -> None:
    figure, ax = drawn_axes(sources["prices"])
    assert ax.get_ylabel() == "EUR/MWh"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["Germany", "France"]


def test_bar_chart_groups_one_bar_per_y_column_per_x_value(sources: dict[str, DataSource]) -> None:
    _, ax = drawn_axes(sources["capacity"])
    assert len(ax.patches) == 3 * 4  # three columns, four years
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2015", "2016", "2017", "2018"]
    first_group = sorted(ax.patches, key=lambda bar: bar.get_x())[:3]
    assert [bar.get_height() for bar in first_group] == [650.0, 420.0, 300.0]


def test_single_y_column_has_no_legend_and_names_the_axis(data_dir: Path) -> None:
    source = DataSource("coal", data_dir / "generation.csv", chart="line", x="year", y=("coal",))
    figure, ax = drawn_axes(source)
    assert figure.legends == [] and ax.get_legend() is None
    assert ax.get_ylabel() == "Coal"


def test_caption_names_the_source_its_columns_and_x(sources: dict[str, DataSource]) -> None:
    assert chart_caption(sources["eu_generation"]) == "EU generation — coal, gas, wind by year"


def test_rendering_never_imports_pyplot(tmp_path: Path, sources: dict[str, DataSource]) -> None:
    """pyplot's global figure registry is not safe across threads; a fresh interpreter proves it stays out."""
    source = sources["eu_generation"]
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from report_pipeline.writers.figures.charts import ChartRenderer\n"
        "from report_pipeline.workbook.data import DataStore\n"
        "from report_pipeline.models import DataSource\n"
        f"source = DataSource('g', Path({str(source.path)!r}), chart='bar', x='year', y=('coal', 'gas'))\n"
        f"ChartRenderer(Path({str(tmp_path)!r})).render('g', DataStore({{'g': source}}))\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


SHADED = """year,basis,coal
2022,historical,400
2023,historical,330
2024,estimate,270
2025,projection,240
2026,projection,210
"""


def test_a_shade_marks_projections_with_a_band_and_a_legend_entry(tmp_path: Path) -> None:
    (tmp_path / "coal.csv").write_text(SHADED, encoding="utf-8")
    for kind in ("line", "bar"):
        source = DataSource("coal", tmp_path / "coal.csv", chart=kind, x="year", y=("coal",),
                            shade=("basis", "projection"))
        spec = chart_spec(source, load_frame(source))
        assert spec.shaded == (3, 4) and spec.shade_label == "Projection"
        assert ChartSpec.from_json(spec.to_json()) == spec  # it travels to the drawing process intact
        assert chart_caption(source).endswith("by year (shaded: projection)")
        figure, ax = drawn_axes(source)
        bands = [patch for patch in ax.patches if patch.get_label() == "Projection"]
        assert len(bands) == 1
        left, right = bands[0].get_x(), bands[0].get_x() + bands[0].get_width()
        assert (left, right) == ((2024.5, 2026.5) if kind == "line" else (2.5, 4.5))  # half a step either side
        assert "Projection" in [t.get_text() for t in figure.legends[0].get_texts()]


def test_a_shade_column_missing_from_the_table_names_the_source(tmp_path: Path) -> None:
    (tmp_path / "coal.csv").write_text(SHADED, encoding="utf-8")
    source = DataSource("coal", tmp_path / "coal.csv", chart="line", x="year", y=("coal",), shade=("kind", "x"))
    with pytest.raises(ValueError, match="'coal'.*shade column 'kind'"):
        chart_spec(source, load_frame(source))
