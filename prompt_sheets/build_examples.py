"""Build the example prompt sheet `energy_transition.xlsx` and its data tables.

    python prompt_sheets/build_examples.py            # writes next to this script
    python prompt_sheets/build_examples.py --out DIR  # writes into DIR instead

Everything is computed from the constants below, with no randomness and fixed
file timestamps, so a rebuild produces the same bytes and `git diff` only shows
real edits. The figures are illustrative, not sourced (see README.md): plausible
in magnitude, good enough to exercise prompts, charts and checks, but not data
to quote.

Edit the workbook by editing this script and re-running it, so the sheet and
its data never drift apart.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from report_pipeline.workbook.starter import (
    DATA_COLUMNS,
    OBJECTIVE_COLUMNS,
    SETTINGS_COLUMNS,
    TASK_COLUMNS,
    SheetSpec,
    write_workbook,
)

HERE = Path(__file__).resolve().parent
WORKBOOK_NAME = "energy_transition.xlsx"
PROJECT_NAME = "European Energy Transition Outlook 2026"

YEARS = tuple(range(2015, 2031))
LAST_HISTORICAL = 2024
ESTIMATE_YEAR = 2025

Table = tuple[list[str], list[dict[str, Any]]]


# -- helpers -------------------------------------------------------------------------


def basis(year: int) -> str:
    """How a year's figure should be described: history, this year's estimate, or outlook."""
    if year <= LAST_HISTORICAL:
        return "historical"
    return "estimate" if year == ESTIMATE_YEAR else "projection"


def interpolate(anchors: Mapping[int, float], year: int) -> float:
    """Piecewise-linear through `anchors` (year -> value), flat beyond the ends."""
    points = sorted(anchors.items())
    if year <= points[0][0]:
        return points[0][1]
    for (y0, v0), (y1, v1) in zip(points, points[1:]):
        if y0 <= year <= y1:
            return v0 + (v1 - v0) * (year - y0) / (y1 - y0)
    return points[-1][1]


def series(values: Sequence[float]) -> dict[int, float]:
    """A value for every year 2015-2030, given in order."""
    if len(values) != len(YEARS):
        raise ValueError(f"expected {len(YEARS)} yearly values, got {len(values)}")
    return dict(zip(YEARS, values))


# weather: a windy, dry or sunny year moves output around the trend (historical years only;
# projections assume a normal year)
WIND_YEAR = {2015: 1.00, 2016: 0.92, 2017: 1.06, 2018: 1.00, 2019: 1.05, 2020: 1.07,
             2021: 0.90, 2022: 0.98, 2023: 1.06, 2024: 0.97}
HYDRO_YEAR = {2015: 0.97, 2016: 1.02, 2017: 0.86, 2018: 1.03, 2019: 0.93, 2020: 1.01,
              2021: 1.00, 2022: 0.79, 2023: 0.95, 2024: 1.10}
SOLAR_YEAR = {2018: 1.03, 2021: 0.97, 2022: 1.04}
WEATHER = {"wind": WIND_YEAR, "hydro": HYDRO_YEAR, "solar": SOLAR_YEAR}

SOURCES = ("coal", "gas", "nuclear", "hydro", "wind", "solar", "bioenergy", "other")
RENEWABLE = ("hydro", "wind", "solar", "bioenergy")


# -- generation (TWh) ------------------------------------------------------------------

# trend anchors per source, TWh; coal includes lignite, other = oil, waste, geothermal
EU_GENERATION: dict[str, dict[int, float]] = {
    "coal": {2015: 650, 2016: 600, 2017: 580, 2018: 550, 2019: 420, 2020: 340, 2021: 400,
             2022: 440, 2023: 330, 2024: 270, 2026: 210, 2028: 150, 2030: 100},
    "gas": {2015: 420, 2016: 480, 2017: 530, 2018: 520, 2019: 580, 2020: 570, 2021: 540,
            2022: 560, 2023: 450, 2024: 420, 2030: 300},
    "nuclear": {2015: 770, 2016: 760, 2017: 750, 2018: 760, 2019: 765, 2020: 685, 2021: 730,
                2022: 610, 2023: 620, 2024: 650, 2030: 640},
    "hydro": {2015: 355, 2030: 360},
    "wind": {2015: 300, 2017: 350, 2020: 390, 2023: 440, 2024: 485, 2030: 820},
    "solar": {2015: 100, 2018: 115, 2019: 125, 2020: 145, 2021: 160, 2022: 205, 2023: 250,
              2024: 300, 2030: 660},
    "bioenergy": {2015: 165, 2020: 170, 2024: 155, 2030: 150},
    "other": {2015: 60, 2030: 40},
}

COUNTRY_GENERATION: dict[str, dict[str, dict[int, float]]] = {
    "Germany": {
        "coal": {2015: 272, 2016: 262, 2017: 242, 2018: 229, 2019: 171, 2020: 134, 2021: 163,
                 2022: 166, 2023: 115, 2024: 101, 2026: 80, 2028: 60, 2030: 40},
        "gas": {2015: 62, 2017: 86, 2019: 90, 2020: 95, 2021: 89, 2022: 80, 2023: 77, 2024: 77, 2030: 90},
        "nuclear": {2015: 87, 2016: 80, 2017: 72, 2018: 72, 2019: 71, 2020: 61, 2021: 65, 2022: 33,
                    2023: 7, 2024: 0, 2030: 0},
        "hydro": {2015: 20, 2030: 21},
        "wind": {2015: 80, 2017: 95, 2020: 118, 2023: 125, 2024: 140, 2030: 250},
        "solar": {2015: 38, 2018: 44, 2020: 49, 2022: 60, 2024: 72, 2030: 160},
        "bioenergy": {2015: 50, 2020: 50, 2024: 45, 2030: 40},
        "other": {2015: 26, 2030: 18},
    },
    "France": {
        "coal": {2015: 9, 2017: 10, 2018: 6, 2019: 2, 2020: 1.5, 2021: 2, 2022: 3, 2023: 1,
                 2024: 0.5, 2027: 0, 2030: 0},
        "gas": {2015: 22, 2016: 35, 2017: 40, 2018: 31, 2019: 38, 2020: 35, 2021: 33, 2022: 44,
                2023: 30, 2024: 17, 2030: 15},
        "nuclear": {2015: 417, 2016: 384, 2017: 379, 2018: 393, 2019: 379, 2020: 335, 2021: 361,
                    2022: 279, 2023: 320, 2024: 361, 2027: 370, 2030: 375},
        "hydro": {2015: 58, 2030: 60},
        "wind": {2015: 21, 2020: 39, 2024: 47, 2030: 85},
        "solar": {2015: 7, 2020: 13, 2024: 24, 2030: 60},
        "bioenergy": {2015: 8, 2030: 10},
        "other": {2015: 4, 2030: 4},
    },
    "Spain": {
        "coal": {2015: 53, 2016: 38, 2017: 45, 2018: 37, 2019: 13, 2020: 5, 2021: 5, 2022: 8,
                 2023: 4, 2024: 3, 2026: 0, 2030: 0},
        "gas": {2015: 80, 2018: 85, 2019: 100, 2020: 90, 2021: 80, 2022: 100, 2023: 75, 2024: 60, 2030: 45},
        "nuclear": {2015: 55, 2024: 52, 2027: 48, 2030: 38},
        "hydro": {2015: 30, 2030: 30},
        "wind": {2015: 48, 2020: 55, 2024: 62, 2030: 100},
        "solar": {2015: 14, 2018: 12.5, 2019: 15, 2020: 20, 2021: 26, 2022: 32, 2023: 42, 2024: 50, 2030: 105},
        "bioenergy": {2015: 5, 2030: 7},
        "other": {2015: 8, 2030: 6},
    },
    "Italy": {
        "coal": {2015: 43, 2017: 32, 2019: 18, 2020: 13, 2021: 13, 2022: 20, 2023: 12, 2024: 5,
                 2025: 2, 2026: 0, 2030: 0},
        "gas": {2015: 110, 2017: 140, 2019: 141, 2020: 133, 2021: 144, 2022: 141, 2023: 119,
                2024: 110, 2030: 95},
        "nuclear": {2015: 0},
        "hydro": {2015: 45, 2030: 47},
        "wind": {2015: 15, 2020: 19, 2024: 22, 2030: 40},
        "solar": {2015: 23, 2020: 25, 2022: 28, 2024: 36, 2030: 80},
        "bioenergy": {2015: 19, 2030: 17},
        "other": {2015: 12, 2030: 10},
    },
    "Poland": {
        "coal": {2015: 135, 2018: 134, 2019: 121, 2020: 110, 2021: 128, 2022: 120, 2023: 99,
                 2024: 95, 2030: 60},
        "gas": {2015: 8, 2019: 15, 2022: 13, 2024: 22, 2030: 30},
        "nuclear": {2015: 0},
        "hydro": {2015: 2.5, 2030: 2.5},
        "wind": {2015: 11, 2020: 16, 2024: 24, 2030: 45},
        "solar": {2015: 0.1, 2019: 0.7, 2020: 2, 2021: 4, 2022: 8, 2023: 12, 2024: 17, 2030: 35},
        "bioenergy": {2015: 9, 2030: 11},
        "other": {2015: 3, 2030: 3},
    },
    "Netherlands": {
        "coal": {2015: 45, 2017: 35, 2019: 24, 2020: 10, 2021: 16, 2022: 17, 2023: 8, 2024: 6,
                 2029: 0, 2030: 0},
        "gas": {2015: 48, 2017: 56, 2019: 70, 2020: 72, 2021: 56, 2022: 47, 2023: 45, 2024: 40, 2030: 25},
        "nuclear": {2015: 4, 2030: 4},
        "hydro": {2015: 0.1, 2030: 0.1},
        "wind": {2015: 8, 2020: 15, 2023: 29, 2024: 33, 2030: 75},
        "solar": {2015: 1, 2018: 4, 2020: 9, 2022: 17, 2024: 22, 2030: 40},
        "bioenergy": {2015: 7, 2030: 6},
        "other": {2015: 4, 2030: 3},
    },
}


def _generation_row(anchors: Mapping[str, Mapping[int, float]], year: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for source in SOURCES:
        weather = WEATHER.get(source, {}).get(year, 1.0)
        row[source] = round(interpolate(anchors[source], year) * weather, 1)
    total = sum(row[s] for s in SOURCES)
    row["total"] = round(total, 1)
    row["renewable_share_pct"] = round(100 * sum(row[s] for s in RENEWABLE) / total, 1)
    return row


def eu_generation() -> Table:
    columns = ["year", "basis", *SOURCES, "total", "renewable_share_pct"]
    rows = [{"year": y, "basis": basis(y), **_generation_row(EU_GENERATION, y)} for y in YEARS]
    return columns, rows


def generation_by_country() -> Table:
    columns = ["country", "year", "basis", *SOURCES, "total", "renewable_share_pct"]
    rows = [
        {"country": country, "year": y, "basis": basis(y), **_generation_row(anchors, y)}
        for country, anchors in COUNTRY_GENERATION.items()
        for y in YEARS
    ]
    return columns, rows


# -- capacity additions (GW, EU-27) ----------------------------------------------------

SOLAR_ADDED = series([7.2, 6.1, 5.9, 8.2, 16.2, 19.3, 26.8, 40.1, 61.3, 65.5,
                      64.0, 66.0, 68.5, 71.0, 73.5, 76.0])
ONSHORE_ADDED = series([9.3, 10.0, 11.9, 7.8, 8.7, 9.8, 9.4, 13.8, 13.2, 11.4,
                        12.5, 14.5, 16.0, 17.5, 18.5, 19.5])
OFFSHORE_ADDED = series([2.9, 1.2, 2.6, 2.0, 1.9, 1.4, 1.0, 1.2, 2.6, 1.6,
                         2.5, 4.0, 5.5, 7.0, 8.5, 10.0])
SOLAR_END_2014_GW = 87.0
WIND_END_2014_GW = 125.0


def capacity_additions() -> Table:
    columns = ["year", "basis", "solar_pv_gw", "onshore_wind_gw", "offshore_wind_gw", "total_gw",
               "solar_pv_cumulative_gw", "wind_cumulative_gw"]
    rows, solar, wind = [], SOLAR_END_2014_GW, WIND_END_2014_GW
    for y in YEARS:
        solar += SOLAR_ADDED[y]
        wind += ONSHORE_ADDED[y] + OFFSHORE_ADDED[y]
        rows.append({
            "year": y, "basis": basis(y),
            "solar_pv_gw": SOLAR_ADDED[y], "onshore_wind_gw": ONSHORE_ADDED[y],
            "offshore_wind_gw": OFFSHORE_ADDED[y],
            "total_gw": round(SOLAR_ADDED[y] + ONSHORE_ADDED[y] + OFFSHORE_ADDED[y], 1),
            "solar_pv_cumulative_gw": round(solar, 1), "wind_cumulative_gw": round(wind, 1),
        })
    return columns, rows


# -- storage and grid (EU-27) ----------------------------------------------------------

BATTERY_GW = series([0.6, 0.9, 1.4, 2.2, 3.1, 4.5, 6.6, 10.5, 18.0, 28.0,
                     40.0, 53.0, 67.0, 82.0, 98.0, 115.0])
UTILITY_SHARE = series([0.50, 0.45, 0.40, 0.35, 0.30, 0.30, 0.30, 0.28, 0.30, 0.36,
                        0.42, 0.47, 0.51, 0.55, 0.58, 0.60])
CURTAILED_TWH = series([3.5, 4.0, 5.5, 5.8, 6.5, 7.5, 8.0, 9.5, 12.5, 16.0,
                        19.0, 21.0, 22.0, 22.0, 21.0, 20.0])
NEGATIVE_HOURS_DE = series([126, 97, 146, 134, 211, 298, 139, 69, 301, 457,
                            560, 560, 530, 490, 450, 410])
NEGATIVE_HOURS_ES = series([0, 0, 0, 0, 0, 0, 0, 0, 0, 247,
                            420, 450, 430, 400, 370, 340])


def storage() -> Table:
    columns = ["year", "basis", "home_and_business_gw", "utility_scale_gw", "battery_total_gw",
               "battery_energy_gwh", "pumped_hydro_gw"]
    rows = []
    for y in YEARS:
        total = BATTERY_GW[y]
        utility = round(total * UTILITY_SHARE[y], 1)
        hours = interpolate({2015: 1.4, 2030: 2.3}, y)  # average storage duration
        rows.append({
            "year": y, "basis": basis(y),
            "home_and_business_gw": round(total - utility, 1), "utility_scale_gw": utility,
            "battery_total_gw": total, "battery_energy_gwh": round(total * hours, 1),
            "pumped_hydro_gw": round(interpolate({2015: 44.5, 2025: 44.5, 2030: 47.5}, y), 1),
        })
    return columns, rows


def grid() -> Table:
    columns = ["year", "basis", "interconnection_gw", "curtailed_renewables_twh",
               "negative_price_hours_germany", "negative_price_hours_spain"]
    rows = [
        {
            "year": y, "basis": basis(y),
            "interconnection_gw": round(interpolate({2015: 78, 2024: 104, 2030: 135}, y), 1),
            "curtailed_renewables_twh": CURTAILED_TWH[y],
            "negative_price_hours_germany": NEGATIVE_HOURS_DE[y],
            "negative_price_hours_spain": NEGATIVE_HOURS_ES[y],
        }
        for y in YEARS
    ]
    return columns, rows


# -- electrification -----------------------------------------------------------------

EU_EV_SHARE = series([1.0, 1.1, 1.5, 2.0, 3.0, 10.5, 17.8, 21.6, 22.7, 20.9,
                      25.0, 30.0, 36.0, 44.0, 52.0, 60.0])
EU_BEV_SHARE = series([0.5, 0.6, 0.8, 1.0, 1.9, 5.4, 9.1, 12.1, 14.6, 13.6,
                       17.0, 21.0, 27.0, 34.0, 41.0, 48.0])
EU_HEAT_PUMPS_K = series([800, 880, 1000, 1150, 1300, 1600, 2150, 2750, 2400, 1750,
                          1950, 2250, 2650, 3050, 3450, 3850])
# a country's electric-car share relative to the EU average, and its share of EU heat-pump sales
EV_RELATIVE: dict[str, dict[int, float]] = {
    "Germany": {2015: 0.7, 2020: 1.28, 2022: 1.45, 2024: 0.94, 2030: 1.05},
    "France": {2015: 1.2, 2020: 1.05, 2024: 1.25, 2030: 1.1},
    "Italy": {2015: 0.2, 2020: 0.41, 2024: 0.36, 2030: 0.7},
    "Spain": {2015: 0.3, 2020: 0.45, 2024: 0.55, 2030: 0.8},
    "Poland": {2015: 0.1, 2020: 0.2, 2024: 0.3, 2030: 0.6},
    "Netherlands": {2015: 4.5, 2019: 4.8, 2020: 2.3, 2024: 2.3, 2030: 1.5},
}
HEAT_PUMP_SHARE: dict[str, dict[int, float]] = {
    "Germany": {2015: 0.07, 2022: 0.085, 2023: 0.15, 2024: 0.11, 2030: 0.13},
    "France": {2015: 0.25, 2024: 0.22, 2030: 0.20},
    "Italy": {2015: 0.20, 2024: 0.18, 2030: 0.17},
    "Spain": {2015: 0.06, 2030: 0.07},
    "Poland": {2015: 0.015, 2022: 0.07, 2024: 0.045, 2030: 0.06},
    "Netherlands": {2015: 0.02, 2022: 0.06, 2024: 0.07, 2030: 0.06},
}
SHARE_CAP_PCT = 98.0


def electrification() -> Table:
    columns = ["country", "year", "basis", "ev_share_new_cars_pct", "bev_share_new_cars_pct",
               "heat_pump_sales_thousand"]
    rows = [
        {"country": "EU-27", "year": y, "basis": basis(y), "ev_share_new_cars_pct": EU_EV_SHARE[y],
         "bev_share_new_cars_pct": EU_BEV_SHARE[y], "heat_pump_sales_thousand": EU_HEAT_PUMPS_K[y]}
        for y in YEARS
    ]
    for country, relative in EV_RELATIVE.items():
        for y in YEARS:
            factor = interpolate(relative, y)
            rows.append({
                "country": country, "year": y, "basis": basis(y),
                "ev_share_new_cars_pct": round(min(SHARE_CAP_PCT, EU_EV_SHARE[y] * factor), 1),
                "bev_share_new_cars_pct": round(min(SHARE_CAP_PCT, EU_BEV_SHARE[y] * factor), 1),
                "heat_pump_sales_thousand": round(EU_HEAT_PUMPS_K[y] * interpolate(HEAT_PUMP_SHARE[country], y)),
            })
    return columns, rows


# -- prices, investment, emissions ------------------------------------------------------

# annual average day-ahead baseload, EUR/MWh
POWER_PRICES: dict[str, dict[int, float]] = {
    "germany_eur_mwh": series([31.6, 29.0, 34.2, 44.5, 37.7, 30.5, 96.9, 235.5, 95.2, 78.0,
                               85.0, 80.0, 76.0, 72.0, 70.0, 68.0]),
    "france_eur_mwh": series([38.5, 36.7, 45.0, 50.2, 39.4, 32.2, 109.2, 275.9, 96.9, 58.0,
                              62.0, 60.0, 58.0, 56.0, 55.0, 54.0]),
    "spain_eur_mwh": series([50.3, 39.7, 52.2, 57.3, 47.7, 34.0, 111.9, 167.5, 87.1, 63.0,
                             62.0, 58.0, 55.0, 52.0, 50.0, 48.0]),
    "italy_eur_mwh": series([52.3, 42.8, 54.0, 61.3, 52.3, 38.9, 125.5, 303.9, 127.2, 108.0,
                             110.0, 100.0, 94.0, 89.0, 85.0, 82.0]),
    "poland_eur_mwh": series([37.0, 36.0, 37.0, 50.0, 53.0, 47.0, 87.0, 167.0, 115.0, 95.0,
                              95.0, 92.0, 88.0, 85.0, 82.0, 80.0]),
    "netherlands_eur_mwh": series([40.0, 32.0, 39.0, 52.5, 41.2, 32.2, 102.9, 241.9, 95.8, 77.0,
                                   82.0, 77.0, 73.0, 70.0, 68.0, 66.0]),
}
TTF_GAS = series([20.0, 14.0, 17.0, 23.0, 13.5, 9.4, 46.5, 123.0, 41.0, 34.5,
                  38.0, 32.0, 28.0, 26.0, 25.0, 25.0])
EU_ETS = series([7.7, 5.3, 5.8, 15.8, 24.8, 24.8, 53.6, 80.9, 85.3, 65.0,
                 72.0, 78.0, 85.0, 95.0, 105.0, 120.0])


def prices() -> Table:
    columns = ["year", "basis", *POWER_PRICES, "ttf_gas_eur_mwh", "eu_ets_eur_t"]
    rows = [
        {"year": y, "basis": basis(y), **{c: v[y] for c, v in POWER_PRICES.items()},
         "ttf_gas_eur_mwh": TTF_GAS[y], "eu_ets_eur_t": EU_ETS[y]}
        for y in YEARS
    ]
    return columns, rows


# bn EUR per year, EU-27
INVESTMENT: dict[str, dict[int, float]] = {
    "renewables_bn_eur": series([50, 48, 45, 52, 60, 65, 75, 90, 110, 115, 118, 122, 126, 130, 133, 136]),
    "grids_bn_eur": series([30, 31, 32, 34, 36, 37, 40, 45, 52, 58, 64, 70, 75, 80, 84, 88]),
    "storage_bn_eur": series([0.5, 0.7, 1.0, 1.4, 1.8, 2.5, 3.5, 6.0, 10.0, 13.0, 16.0, 18.0, 20.0, 22.0, 24.0, 25.0]),
    "ev_charging_bn_eur": series([0.3, 0.4, 0.6, 0.9, 1.2, 1.8, 2.8, 4.0, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5]),
    "heat_pumps_bn_eur": series([8.0, 9.0, 10.0, 11.5, 13.0, 16.0, 21.0, 28.0, 25.0, 19.0, 21.0, 24.0, 28.0, 32.0, 36.0, 40.0]),
}


def investment() -> Table:
    columns = ["year", "basis", *INVESTMENT, "total_bn_eur"]
    rows = []
    for y in YEARS:
        values = {c: float(v[y]) for c, v in INVESTMENT.items()}
        rows.append({"year": y, "basis": basis(y), **values, "total_bn_eur": round(sum(values.values()), 1)})
    return columns, rows


# Mt CO2e, EU-27; power is derived from the EU generation table so the two agree
SECTOR_EMISSIONS: dict[str, dict[int, float]] = {
    "industry_mt": {2015: 780, 2019: 760, 2020: 700, 2021: 740, 2022: 720, 2023: 680, 2024: 675, 2030: 590},
    "transport_mt": {2015: 800, 2019: 840, 2020: 730, 2021: 780, 2022: 800, 2023: 800, 2024: 795, 2030: 700},
    "buildings_mt": {2015: 530, 2019: 510, 2020: 490, 2021: 515, 2022: 460, 2023: 450, 2024: 445, 2030: 370},
    "other_mt": {2015: 520, 2024: 470, 2030: 430},
}
COAL_T_PER_MWH, GAS_T_PER_MWH, POWER_OTHER_MT = 0.95, 0.37, 25.0


def emissions() -> Table:
    columns = ["year", "basis", "power_mt", *SECTOR_EMISSIONS, "total_mt"]
    generation = {row["year"]: row for row in eu_generation()[1]}
    rows = []
    for y in YEARS:
        power = generation[y]["coal"] * COAL_T_PER_MWH + generation[y]["gas"] * GAS_T_PER_MWH + POWER_OTHER_MT
        values = {"power_mt": round(power), **{c: round(interpolate(a, y)) for c, a in SECTOR_EMISSIONS.items()}}
        rows.append({"year": y, "basis": basis(y), **values, "total_mt": sum(values.values())})
    return columns, rows


def policy_targets() -> Table:
    columns = ["instrument", "area", "target", "target_year", "status"]
    rows = [
        ("European Climate Law", "economy-wide", "net greenhouse gas emissions at least 55% below 1990", 2030, "in force"),
        ("European Climate Law", "economy-wide", "climate neutrality (net zero)", 2050, "in force"),
        ("2040 climate target", "economy-wide", "net greenhouse gas emissions 90% below 1990", 2040, "being legislated"),
        ("EU Emissions Trading System", "power, industry, aviation, maritime", "emissions 62% below 2005", 2030, "in force"),
        ("ETS2", "buildings and road transport fuels", "carbon price on fuel suppliers from 2027", 2027, "scheduled; start date debated"),
        ("Effort Sharing Regulation", "transport, buildings, agriculture, waste", "emissions 40% below 2005", 2030, "in force"),
        ("Renewable Energy Directive (RED III)", "energy", "42.5% renewables in gross final energy consumption", 2030, "in force"),
        ("EU Solar Energy Strategy", "power", "about 600 GW (AC) of solar PV installed", 2030, "target"),
        ("Member-state offshore wind goals", "power", "about 110 GW of offshore wind installed", 2030, "non-binding"),
        ("Energy Efficiency Directive", "energy", "final energy consumption 11.7% below the 2020 reference projection", 2030, "in force"),
        ("CO2 standards for new cars", "transport", "55% below 2021 levels; zero-emission only from 2035", 2030, "in force; review under way"),
        ("Grid Action Plan", "grids", "about EUR 584 bn of electricity grid investment 2024-2030", 2030, "plan"),
        ("Net-Zero Industry Act", "industry", "40% of net-zero technology needs manufactured in the EU", 2030, "in force"),
        ("Reference value", "economy-wide", "EU-27 greenhouse gas emissions in 1990: about 4,870 Mt CO2e", 1990, "reference"),
    ]
    return columns, [dict(zip(columns, row)) for row in rows]


# -- the prompt sheet ------------------------------------------------------------------

HOUSE_RULES = (
    "You are a senior energy-market analyst writing an annual outlook on Europe's energy "
    "transition for utility strategists, infrastructure investors and policy advisers. They "
    "know the sector, so skip textbook definitions, but they are busy: lead with the finding, "
    "then the evidence. Write in British English, in plain prose paragraphs (bullet points only "
    "when asked), with a unit on every number (TWh, GW, GWh, EUR/MWh, EUR/t, bn EUR, Mt CO2e). "
    "Use only figures that appear in the tables and chapter texts you are given. In the tables, "
    "2015-2024 are historical, 2025 is an estimate and 2026-2030 are projections: say which kind "
    "of number you are quoting. If a point needs a number the tables do not contain, make the "
    "point without the number. Never invent sources, quotes or figures."
)


def system_prompt(focus: str) -> str:
    return f"{HOUSE_RULES}\n\nIn this chapter: {focus}"


OBJECTIVES: list[dict[str, Any]] = [
    {"objective_id": "exec", "title": "Executive summary",
     "description": "One page for board members and senior officials. Written last, from every other "
                    "chapter (it depends on all of them), but placed first in the report.",
     "system_prompt": system_prompt(
         "you are the lead author. Synthesise; do not repeat chapter detail. Every number you use "
         "must appear in the chapter texts provided.")},
    {"objective_id": "gen", "title": "Power generation mix",
     "description": "How Europe makes its electricity, 2015-2030: coal and gas giving way to wind and "
                    "solar, nuclear's role, and country differences.",
     "system_prompt": system_prompt(
         "focus on the generation mix: which sources gained and lost output, and why.")},
    {"objective_id": "ren", "title": "Renewables build-out",
     "description": "Annual solar and wind additions, the pace needed for 2030 targets, and what the "
                    "new capacity delivers.",
     "system_prompt": system_prompt(
         "focus on deployment: annual additions, supply chains, permitting and the gap to targets.")},
    {"objective_id": "grid", "title": "Grids, storage and flexibility",
     "description": "Battery deployment, interconnection, negative prices and curtailment: can the "
                    "system absorb the renewables being built?",
     "system_prompt": system_prompt(
         "focus on system integration: flexibility, storage, networks and the price signals that "
         "show where they fall short.")},
    {"objective_id": "elec", "title": "Electrification of transport and heat",
     "description": "Electric-car sales and heat-pump sales across the EU and six countries, and what "
                    "they mean for power demand.",
     "system_prompt": system_prompt(
         "focus on end-use electrification: adoption curves, policy support and consumer economics.")},
    {"objective_id": "price", "title": "Prices and investment",
     "description": "Wholesale power prices, the gas and carbon prices behind them, and the investment "
                    "flowing into the transition.",
     "system_prompt": system_prompt(
         "focus on market economics: price formation, spreads between countries, and the investment "
         "case. Do not give investment advice.")},
    {"objective_id": "policy", "title": "Policy and emissions",
     "description": "Emissions by sector against the EU's 2030 and 2050 targets, and the policies that "
                    "have to close the gap.",
     "system_prompt": system_prompt(
         "focus on emissions and policy: progress by sector, the gap to targets and which instruments "
         "matter most.")},
]
for objective in OBJECTIVES:
    objective["enabled"] = True
    if objective["objective_id"] != "exec":  # the summary's description is a note for the analyst
        objective["lead"] = objective["description"]

CHAPTERS = [o for o in OBJECTIVES if o["objective_id"] != "exec"]


def section_intro() -> str:
    return ('Write the section "{{ task.title }}" of the chapter "{{ objective.title }}" '
            "in {{ project.name }}.")


def chapter_texts() -> str:
    """Every chapter's text, headed by its title: what the executive summary is written from."""
    return "\n\n".join(
        f"## {chapter['title']}\n{{{{ results[\"{chapter['objective_id']}\"] }}}}" for chapter in CHAPTERS
    )


EVERY_CHAPTER = ", ".join(chapter["objective_id"] for chapter in CHAPTERS)


def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of each paragraph or bullet, as an analyst types in a cell.

    Blank lines, bullets (`- `), headings (`## `), template lines (`{{ ... }}`) and
    lines after a colon keep their own line.
    """
    lines: list[str] = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        previous = lines[-1] if lines else ""
        starts_block = not line or line.startswith(("- ", "## ", "{{"))
        ends_block = not previous or previous.endswith(":") or previous.startswith(("## ", "{{"))
        if lines and not starts_block and not ends_block:
            lines[-1] = f"{previous} {line}"
        else:
            lines.append(line)
    return "\n".join(lines)


def task(objective_id: str, task_id: str, title: str, prompt: str, *, data: str = "",
         depends_on: str = "", steps: str = "generate", include_table: bool = False,
         temperature: float | None = None, max_tokens: int | None = None,
         enabled: bool = True, for_each: str = "", merge: str = "") -> dict[str, Any]:
    return {
        "objective_id": objective_id, "task_id": task_id, "title": title, "prompt": unwrap(prompt),
        "data": data or None, "depends_on": depends_on or None, "steps": steps, "model": None,
        "temperature": temperature, "max_tokens": max_tokens, "enabled": enabled,
        "include_table": include_table, "for_each": for_each or None, "merge": merge or None,
    }


TASKS: list[dict[str, Any]] = [
    # -- executive summary: written from every chapter ------------------------------
    task("exec", "t1", "Key messages", f"""
Write the "{{{{ task.title }}}}" of the {{{{ objective.title }}}} of {{{{ project.name }}}}.

The six chapters of the report follow.

{chapter_texts()}

Write five key messages as bullet points. Each is one bold headline sentence followed by two
sentences of evidence with at least one number taken from the chapters. Cover, in this
order, the generation mix, the build-out pace, system flexibility, electrification, prices
and investment, and emissions against targets. 250-300 words in total. Do not introduce any number
that is not in the chapter texts.
""", depends_on=EVERY_CHAPTER, steps="generate, refine", max_tokens=1200),
    task("exec", "t2", "The transition in ten numbers", f"""
{section_intro()}

Chapter texts:

{chapter_texts()}

EU-27 generation (TWh), for reference:
{{{{ data.eu_generation }}}}

EU-27 emissions (Mt CO2e), for reference:
{{{{ data.emissions }}}}

Pick the ten numbers that best tell the story of the transition from 2015 to 2030. Present
them as a numbered list: the number with its unit and year in bold, then one sentence saying
why it matters. Take each number exactly as it appears in the chapter texts or the reference
tables and mark projections as "(projection)". Balance history and outlook.
""", data="eu_generation, emissions", depends_on=EVERY_CHAPTER, steps="generate, refine, check",
         max_tokens=1000),
    task("exec", "t3", "Risks to the outlook", f"""
{section_intro()}

Chapter texts:

{chapter_texts()}

Identify the four risks that could most change the 2030 picture the chapters describe (for
example a gas price shock, slow grid build-out, weak electric-car or heat-pump demand, policy
reversal). For each: a bold one-line name, what would happen, which chapter's projection it
would move and in which direction, and an early-warning indicator a reader can watch.
300-350 words. Stay qualitative where the chapters give no number.
""", depends_on=EVERY_CHAPTER, temperature=0.4),
    task("exec", "t4", "Recommendations", f"""
{section_intro()}

Chapter texts:

{chapter_texts()}

Write six recommendations, three for policymakers and three for investors and utilities,
each one sentence of action followed by one sentence of justification drawn from the
chapters. Be specific (what, by whom, by when) and realistic. 250-300 words. No investment
advice on individual companies or securities.
""", depends_on=EVERY_CHAPTER, steps="generate, refine"),

    # -- power generation mix ---------------------------------------------------------
    task("gen", "t1", "EU generation mix 2015-2030", f"""
{section_intro()}

EU-27 electricity generation by source (TWh) and the renewable share of generation (%):
{{{{ data.eu_generation }}}}

In 300-350 words:
- describe how the mix changed between 2015 and 2024, naming the three largest shifts by
  source in TWh;
- give the renewable share in 2015, 2024 and 2030 as shown in the table;
- explain the main drivers in one paragraph: coal-to-gas and coal-to-renewables switching,
  low nuclear availability in 2022, the 2022 drought;
- end with one sentence on what the 2030 projection implies for fossil generation.

Round to the nearest 5 TWh or whole percent. The table will be printed below your text, so do
not reproduce it.
""", data="eu_generation", steps="generate, refine", include_table=True),
    task("gen", "t2", "Germany after the nuclear exit", f"""
{section_intro()}

Germany's generation by source (TWh):
{{{{ data.generation_germany }}}}

In 250-300 words, explain how Germany replaced its nuclear output after 2021 (the last
reactors closed in April 2023): compare nuclear, coal, gas, wind and solar output in 2021 and
2024, say whether coal rose or fell over the exit, and what the projection to 2030 shows for
coal. Use only the figures in the table. Do not discuss the political debate beyond one
sentence.
""", data="generation_germany"),
    # a for_each task: one call per country of the table, each seeing only its own rows
    task("gen", "t3", "Country snapshots", f"""
{section_intro()} This part is one paragraph of it, on {{{{ item }}}}.

{{{{ item }}}}'s generation by source in 2015, 2024 and 2030 (TWh; 2030 is a projection):
{{{{ item.table }}}}

Write one short paragraph (60-80 words) on {{{{ item }}}}: the largest source in 2024, the
renewable share in 2015 and 2024, and the single most important change expected by 2030.
Do not start with a heading: the report puts the country's name above your paragraph.
""", steps="generate, refine", for_each="generation_snapshot.country"),
    task("gen", "t4", "What a 2030 mix means for firm capacity", f"""
{section_intro()}

Earlier sections of this chapter:

{{{{ results["gen.t1"] }}}}

{{{{ results["gen.t3"] }}}}

EU-27 generation (TWh):
{{{{ data.eu_generation }}}}

In 250-300 words, discuss what the projected 2030 mix implies for dispatchable ("firm")
generation: how much output coal and gas still provide in 2030 compared with 2024, what
nuclear and hydro contribute, and why winter peaks and low-wind weeks still need firm
capacity or storage. Do not estimate capacity in GW: the table gives energy, not capacity.
""", data="eu_generation", depends_on="gen.t1, gen.t3", steps="generate, refine"),

    # -- renewables build-out -----------------------------------------------------------
    task("ren", "t1", "Annual additions: solar and wind", f"""
{section_intro()}

EU-27 capacity added each year and cumulative installed capacity (GW):
{{{{ data.capacity_additions }}}}

In 250-300 words, describe the pace of additions: the step change in solar from 2019 and the
record year, the flatter path of onshore wind, and offshore wind's lumpy profile. Compare the
annual average of 2015-2019 with that of 2020-2024 for solar and for onshore wind (compute the
averages from the table and show them to one decimal). A chart of the table accompanies the
text; refer to it as "the chart".
""", data="capacity_additions", steps="generate, refine", include_table=True),
    task("ren", "t2", "Solar against the 2030 ambition", f"""
{section_intro()}

Capacity (GW):
{{{{ data.capacity_additions }}}}

EU targets:
{{{{ data.policy_targets }}}}

In 200-250 words, set the cumulative solar capacity in 2024 and the projected 2030 figure
against the solar target in the targets table. Say whether the projection meets it, and what
annual additions would need to average from 2025 to 2030 to close any gap (show the
arithmetic in one sentence). Note that the table's capacity is not stated as AC or DC.
""", data="capacity_additions, policy_targets"),
    task("ren", "t3", "Wind: permitting and the offshore ramp-up", f"""
{section_intro()}

Capacity (GW):
{{{{ data.capacity_additions }}}}

EU targets:
{{{{ data.policy_targets }}}}

In 250-300 words, explain why wind additions have lagged solar: permitting times, auctions and
costs onshore; supply-chain strain, interest rates and grid connections offshore. Then compare
the projected offshore additions for 2025-2030 with the offshore goal in the targets table.
Only the capacity figures may come with numbers; treat the causes qualitatively.
""", data="capacity_additions, policy_targets", steps="generate, refine, check"),
    task("ren", "t4", "What the new capacity delivers", f"""
{section_intro()}

EU-27 generation (TWh):
{{{{ data.eu_generation }}}}

Capacity (GW):
{{{{ data.capacity_additions }}}}

In 200-250 words, relate capacity to output: how wind and solar generation grew between 2015
and 2024 compared with the growth in installed capacity, and why a windy or sunny year moves
the numbers (2021 was a low-wind year). Do not compute capacity factors unless both figures
needed for the same year are in the tables.
""", data="eu_generation, capacity_additions", temperature=0.2),

    # -- grids, storage and flexibility ------------------------------------------------
    task("grid", "t1", "Battery storage deployment", f"""
{section_intro()}

EU-27 installed battery storage (GW and GWh) and pumped hydro (GW):
{{{{ data.storage }}}}

In 250-300 words, describe battery growth since 2020, the shift from home-and-business systems
towards utility-scale projects, and the rising average duration (GWh divided by GW, computed
for 2020, 2024 and 2030). Compare with pumped hydro, which barely grows. End with what the
2030 projection would mean for evening peaks, qualitatively.
""", data="storage", steps="generate, refine"),
    task("grid", "t2", "Negative prices and curtailment", f"""
{section_intro()}

Grid indicators (interconnection GW, curtailed renewables TWh, hours of negative day-ahead
prices in Germany and Spain):
{{{{ data.grid }}}}

In 250-300 words, explain what the rise in negative-price hours and curtailment says about
flexibility: why they jumped in 2023-2024, why Spain appears only from 2024, and why the
projections peak and then fall. Quote the hours for 2020, 2023 and 2024 and the projected peak.
""", data="grid", steps="generate, refine, check"),
    task("grid", "t3", "Interconnection and grid investment", f"""
{section_intro()}

Grid indicators:
{{{{ data.grid }}}}

Investment (bn EUR per year):
{{{{ data.investment }}}}

EU targets and plans:
{{{{ data.policy_targets }}}}

In 200-250 words, describe how cross-border interconnection capacity and grid investment have
grown and are projected to grow. Compute cumulative grid investment for 2024-2030 from the
investment table (show the sum) and compare it with the Grid Action Plan figure in the targets
table. Name two bottlenecks (for example permitting and transformer supply) without numbers.
""", data="grid, investment, policy_targets"),
    task("grid", "t4", "Flexibility needs to 2030", f"""
{section_intro()}

Earlier sections of this chapter:

{{{{ results["grid.t1"] }}}}

{{{{ results["grid.t2"] }}}}

EU-27 generation (TWh):
{{{{ data.eu_generation }}}}

In 250-300 words, bring the chapter together: as wind and solar approach the 2030 projection,
which flexibility options (batteries, interconnection, demand response, hydro, gas peakers)
carry most of the load in which time frame (hours, days, seasons). Be clear about what the
data shows and what is judgement.
""", data="eu_generation", depends_on="grid.t1, grid.t2", steps="generate, refine"),

    # -- electrification of transport and heat ------------------------------------------
    task("elec", "t1", "Electric car sales", f"""
{section_intro()}

EU-27 electric cars as a share of new car sales (battery-electric plus plug-in hybrid, and
battery-electric alone, %) and heat-pump sales (thousand units):
{{{{ data.electrification_eu }}}}

In 250-300 words, describe the EU electric-car share: the jump in 2020, the stall in 2024 and
the projection to 2030. Separate battery-electric from plug-in hybrids. Mention the CO2
standards for cars as the driver of the 2025 and 2030 steps, without quoting numbers that are
not in the table.
""", data="electrification_eu", steps="generate, refine"),
    task("elec", "t2", "Leaders and laggards", f"""
{section_intro()}

Electric-car share of new sales and heat-pump sales by country, 2020 onwards:
{{{{ data.electrification_recent }}}}

In 250-300 words, rank the six countries and the EU-27 average by electric-car share in 2024,
and by heat-pump sales growth from 2020 to 2024. Name the leader and the laggard in each, and
offer one plausible reason for each, marked as judgement. Close with one sentence on the 2030
projections.
""", data="electrification_recent", steps="generate, refine, check"),
    task("elec", "t3", "Heat pumps: boom, slump and recovery", f"""
{section_intro()}

EU-27 series:
{{{{ data.electrification_eu }}}}

By country, 2020 onwards:
{{{{ data.electrification_recent }}}}

In 250-300 words, explain the heat-pump cycle: the 2022 boom after the gas price spike, the
2023-2024 slump (subsidy changes, lower gas prices, high interest rates, a weak housing
market), and the projected recovery. Quote EU sales for 2021, 2022, 2024 and 2030, and the
country with the sharpest fall.
""", data="electrification_eu, electrification_recent"),
    task("elec", "t4", "What electrification adds to power demand", f"""
{section_intro()}

Electrification:
{{{{ data.electrification_eu }}}}

EU-27 generation (TWh):
{{{{ data.eu_generation }}}}

In 200-250 words, discuss what the projected electric-car and heat-pump growth means for
electricity demand and its shape (evening charging peaks, winter heating peaks, smart charging
as flexibility). Compare total generation in 2024 and 2030 from the table. Do not convert
vehicles or heat pumps into TWh: the tables do not allow it.
""", data="electrification_eu, eu_generation", steps="generate, refine"),

    # -- prices and investment --------------------------------------------------------
    task("price", "t1", "Wholesale power prices", f"""
{section_intro()}

Annual average day-ahead baseload prices by country (EUR/MWh):
{{{{ data.power_prices }}}}

In 250-300 words, describe prices before, during and after the 2021-2022 crisis: the pre-crisis
range, each country's 2022 peak, and where prices settled in 2024. Explain the widening spread
between France and Spain on one side and Italy and Poland on the other. The table and a chart
are printed with the text; refer to "the chart" rather than repeating every figure.
""", data="power_prices", steps="generate, refine", include_table=True),
    task("price", "t2", "Gas and carbon: the marginal cost drivers", f"""
{section_intro()}

Gas (TTF, EUR/MWh), carbon (EU ETS, EUR/t) and German power prices (EUR/MWh):
{{{{ data.fuel_and_carbon }}}}

Prices by country:
{{{{ data.power_prices }}}}

In 250-300 words, explain how gas and carbon set power prices when a gas plant is the marginal
unit. Compare the TTF and ETS levels of 2019, 2022 and 2024 with the German power price in the
same years. Show one worked example of a gas plant's fuel-plus-carbon cost for 2024, assuming
about 1.8 MWh of gas and 0.37 t CO2 per MWh of power (about 55% efficiency); state these as
assumptions, not data.
""", data="fuel_and_carbon, power_prices", steps="generate, refine, check"),
    task("price", "t3", "Investment in the transition", f"""
{section_intro()}

EU-27 investment by segment (bn EUR per year):
{{{{ data.investment }}}}

In 250-300 words, describe total investment growth from 2015 to 2024 and the projection to 2030,
which segments grew fastest (compute the 2020-2024 change for each), and the heat-pump dip.
Close with what the mix of investment says about where the transition's bottlenecks are
moving: from generation towards grids and storage.
""", data="investment"),
    task("price", "t4", "Price outlook and investment risk", f"""
{section_intro()}

Earlier sections of this chapter:

{{{{ results["price.t1"] }}}}

{{{{ results["price.t2"] }}}}

{{{{ results["price.t3"] }}}}

In 250-300 words, set out the price outlook to 2030 as the earlier sections report it, and the
risks to investment returns: cannibalisation of solar capture prices, negative-price hours, interest
rates, and policy uncertainty. Be balanced: say what would make the outlook better as well as
worse. Use only numbers already quoted in the earlier sections.
""", depends_on="price.t1, price.t2, price.t3", steps="generate, refine"),
    task("price", "t5", "Household bills (draft)", f"""
{section_intro()}

Prices (EUR/MWh):
{{{{ data.power_prices }}}}

Draft section, disabled until a table of retail tariffs by country is attached. Explain, in
200 words, how wholesale price changes passed through to household bills, with a lag.
""", data="power_prices", enabled=False),

    # -- policy and emissions ----------------------------------------------------------
    task("policy", "t1", "Emissions by sector", f"""
{section_intro()}

EU-27 emissions by sector (Mt CO2e):
{{{{ data.emissions }}}}

In 250-300 words, describe how total emissions and each sector changed between 2015 and 2024,
and the projection to 2030. Show the percentage change 2015-2024 for each sector (computed from
the table, whole percent). Point out that power fell fastest and transport barely moved.
""", data="emissions", steps="generate, refine"),
    task("policy", "t2", "The power sector's contribution", f"""
{section_intro()}

Emissions (Mt CO2e):
{{{{ data.emissions }}}}

Generation (TWh):
{{{{ data.eu_generation }}}}

In 200-250 words, link the fall in power-sector emissions to the fall in coal and gas
generation in the generation table, for 2015, 2019, 2022 and 2024. Explain why 2022 broke the
trend. One sentence on what the 2030 projection means for the power sector's share of total
emissions.
""", data="emissions, eu_generation"),
    task("policy", "t3", "Policy framework and 2030 targets", f"""
{section_intro()}

EU targets and instruments:
{{{{ data.policy_targets }}}}

In 300-350 words, summarise the policy framework a reader needs to understand the rest of the
report: the economy-wide targets, the two carbon markets, the sector targets for renewables,
efficiency and cars, and the industrial and grid plans. Group them by what they act on
(price, mandate, plan). Give each target exactly as the table states it, and its status.
""", data="policy_targets", steps="generate, refine, check"),
    task("policy", "t4", "Gap to target and priorities", f"""
{section_intro()}

Earlier sections:

{{{{ results["policy.t1"] }}}}

{{{{ results["policy.t3"] }}}}

Carbon and gas prices (from the prices chapter):

{{{{ results["price.t2"] }}}}

Emissions (Mt CO2e):
{{{{ data.emissions }}}}

EU targets, with the 1990 reference value:
{{{{ data.policy_targets }}}}

In 250-300 words, compare projected 2030 total emissions with the level implied by the 55% target
(compute it from the 1990 reference value in the targets table and show the arithmetic), noting
that the target is net of land-use removals that the emissions table does not include. Name the
three policy priorities that would close most of the gap, with the sector each acts on.
""", data="emissions, policy_targets", depends_on="policy.t1, policy.t3, price.t2",
         steps="generate, refine"),
]


# name, file, sheet, columns, filter, chart, x, y
DATA_SOURCES: list[dict[str, Any]] = [
    {"name": "eu_generation", "path": "data/eu_generation.csv", "title": "EU electricity generation by source",
     "unit": "TWh", "shade": "basis = projection", "chart": "line", "x": "year", "y": "coal, gas, nuclear, wind, solar"},
    {"name": "generation_germany", "path": "data/generation_by_country.csv",
     "title": "Electricity generation in Germany", "unit": "TWh",
     "columns": "country, year, basis, coal, gas, nuclear, wind, solar, total, renewable_share_pct",
     "filter": 'country == "Germany"', "chart": "line", "x": "year", "y": "coal, gas, nuclear, wind, solar"},
    {"name": "generation_snapshot", "path": "data/generation_by_country.csv",
     "filter": "year == 2015 or year == 2024 or year == 2030"},
    {"name": "capacity_additions", "path": "data/capacity_additions.csv", "title": "Annual capacity additions",
     "unit": "GW", "chart": "bar", "x": "year", "y": "solar_pv_gw, onshore_wind_gw, offshore_wind_gw"},
    {"name": "storage", "path": "data/grid_and_storage.xlsx", "sheet": "storage"},
    {"name": "grid", "path": "data/grid_and_storage.xlsx", "sheet": "grid"},
    {"name": "electrification_eu", "path": "data/electrification.csv", "filter": 'country == "EU-27"',
     "title": "Electric cars in new-car sales, EU-27", "unit": "% of new cars",
     "chart": "line", "x": "year", "y": "ev_share_new_cars_pct, bev_share_new_cars_pct"},
    {"name": "electrification_recent", "path": "data/electrification.csv",
     "columns": "country, year, ev_share_new_cars_pct, heat_pump_sales_thousand",
     "filter": "year >= 2020"},
    {"name": "power_prices", "path": "data/prices.csv", "title": "Wholesale power prices", "unit": "EUR/MWh",
     "shade": "basis = projection",
     "columns": "year, basis, " + ", ".join(POWER_PRICES),
     "chart": "line", "x": "year", "y": "germany_eur_mwh, france_eur_mwh, spain_eur_mwh, italy_eur_mwh"},
    {"name": "fuel_and_carbon", "path": "data/prices.csv",
     "columns": "year, basis, ttf_gas_eur_mwh, eu_ets_eur_t, germany_eur_mwh"},
    {"name": "investment", "path": "data/investment.xlsx", "sheet": "investment",
     "title": "Clean-energy investment in the EU", "unit": "EUR bn",
     "chart": "bar", "x": "year", "y": ", ".join(INVESTMENT)},
    {"name": "emissions", "path": "data/emissions.csv", "title": "EU greenhouse-gas emissions by sector",
     "unit": "Mt CO2e", "shade": "basis = projection", "chart": "line", "x": "year", "y": "power_mt, industry_mt, transport_mt, buildings_mt"},
    {"name": "policy_targets", "path": "data/policy_targets.csv"},
]

# only real RunConfig keys; the run config file and the command line can still override them
SETTINGS: list[dict[str, Any]] = [
    {"key": "project_name", "value": PROJECT_NAME},
    {"key": "steps", "value": "generate"},
    {"key": "temperature", "value": 0.3},
    {"key": "max_tokens", "value": 900},
]

# the data files: CSV tables by file name, XLSX workbooks by file name then sheet
CSV_TABLES = {
    "eu_generation.csv": eu_generation,
    "generation_by_country.csv": generation_by_country,
    "capacity_additions.csv": capacity_additions,
    "electrification.csv": electrification,
    "prices.csv": prices,
    "emissions.csv": emissions,
    "policy_targets.csv": policy_targets,
}
XLSX_TABLES = {
    "grid_and_storage.xlsx": {"storage": storage, "grid": grid},
    "investment.xlsx": {"investment": investment},
}


def prompt_sheet() -> list[SheetSpec]:
    return [
        SheetSpec("objectives", OBJECTIVE_COLUMNS, OBJECTIVES, row_height=90),
        SheetSpec("tasks", TASK_COLUMNS, TASKS, freeze="C2", row_height=120),
        SheetSpec("data", DATA_COLUMNS, DATA_SOURCES),
        SheetSpec("settings", SETTINGS_COLUMNS, SETTINGS),
    ]


# -- writing -------------------------------------------------------------------------


def csv_text(table: Table) -> str:
    columns, rows = table
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def build(out: Path) -> list[Path]:
    """Write the workbook and every data table under `out`; return the paths written."""
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    written = [write_workbook(out / WORKBOOK_NAME, prompt_sheet())]
    for name, make in CSV_TABLES.items():
        path = data_dir / name
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(csv_text(make()))
        written.append(path)
    for name, sheets in XLSX_TABLES.items():
        specs = [SheetSpec(sheet, *make()) for sheet, make in sheets.items()]
        written.append(write_workbook(data_dir / name, specs))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: prompt_sheets/)")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
