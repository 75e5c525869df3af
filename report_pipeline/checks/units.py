"""Units a figure or a column is written in, so "2.1 GW" can be traced to a cell of 2,100 MW.

A unit is a family (power, energy, mass, money, price, percent) and a scale: the SI
prefix times any magnitude word (`MW` is 1e6 W, `bn EUR` is 1e9 EUR). Figures read their
unit from the text after the number; columns from their name (`capacity_gw`,
`investment_bn_eur`, `renewable_share_pct`) or the unit the table was given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PREFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_FAMILY_OF_BASE = {"W": "power", "Wh": "energy", "t": "mass"}
_CURRENCIES = {"EUR": "EUR", "€": "EUR", "USD": "USD", "$": "USD", "US$": "USD", "GBP": "GBP", "£": "GBP",
               "CHF": "CHF"}
#: Magnitude words in column names (lower case) and their factor.
_NAME_MAGNITUDES = {"k": 1e3, "thousand": 1e3, "thousands": 1e3, "m": 1e6, "mn": 1e6, "mln": 1e6,
                    "million": 1e6, "millions": 1e6, "bn": 1e9, "billion": 1e9, "billions": 1e9,
                    "tn": 1e12, "trillion": 1e12}
_NAME_SI = re.compile(r"^(k|m|g|t)?(wh|w)$|^(k|m|g)?t(?:co2e?)?$")
_NAME_PERCENT = {"pct", "percent", "%", "pc", "perc"}
#: Column-name words that say the values are rates or shares, which a text writes with `%`.
_PERCENTISH = {"share", "rate", "growth", "change", "ratio", "cagr", "margin", "yield", "efficiency",
               "utilisation", "utilization", "factor", "percentage", "proportion", "fraction"}
_SI_UNIT = re.compile(r"^([kMGT]?)(Wh|W|t)(?:[ep]|CO2e?)?$")


@dataclass(frozen=True)
class Unit:
    """A family and a scale; `label` is how a trace names it (`MW`, `bn EUR`, `%`)."""

    family: str | None = None
    scale: float = 1.0
    label: str = ""

    @property
    def known(self) -> bool:
        return self.family is not None

    def compatible(self, other: Unit) -> bool:
        """Two units may describe the same quantity: same family, or either unknown."""
        return self.family is None or other.family is None or self.family == other.family


UNKNOWN = Unit()
PERCENT = Unit("percent", 1.0, "%")


def si_unit(symbol: str) -> Unit | None:
    """`GW` -> power at 1e9; `MtCO2e` -> mass at 1e6; None for anything else."""
    match = _SI_UNIT.match(symbol)
    if not match:
        return None
    prefix, base = match.groups()
    return Unit(_FAMILY_OF_BASE[base], _PREFIXES[prefix], prefix + base)


def figure_unit(unit: str | None, currency: bool) -> Unit:
    """The unit a figure was written with (its magnitude word is already in its value)."""
    if unit is None:
        return UNKNOWN
    if "/" in unit or " per " in unit:
        return Unit("price", 1.0, unit)
    if currency or unit in _CURRENCIES:
        return Unit("money", 1.0, _CURRENCIES.get(unit, unit))
    return si_unit(unit) or Unit(None, 1.0, unit)


def prefixed(unit: Unit, scale: float) -> str:
    """`unit`'s label at another SI scale (`GW` at 1e6 -> `MW`), for a unit change named in a trace."""
    match = _SI_UNIT.match(unit.label)
    if match:
        for prefix, factor in _PREFIXES.items():
            if factor == scale:
                return prefix + match.group(2)
    return f"{unit.label} x{scale:g}"


def name_tokens(name: str) -> list[str]:
    """A column name as lower-case words: `renewableShare_pct` -> renewable, share, pct."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(name))
    return [token for token in re.split(r"[^0-9a-zà-ÿ%]+", spaced.lower()) if token]


def column_unit(name: str, table_unit: str | None = None) -> Unit:
    """What a column's values are measured in, from the table's unit or else the column's name.

    `price_eur_mwh` is a price (a currency followed by what it buys), so no prefix
    change applies to it; `investment_bn_eur` is money at 1e9; `capacity_gw` power at 1e9.
    """
    if table_unit:
        return parse_unit_text(table_unit)
    return _unit_from_tokens(name_tokens(name))


def parse_unit_text(text: str) -> Unit:
    """A unit as a person writes it for a table: `TWh`, `EUR/MWh`, `bn EUR`, `%`, `GW`."""
    stripped = text.strip()
    if stripped in ("%", "percent", "per cent", "pct"):
        return PERCENT
    if "/" in stripped or " per " in stripped:
        return Unit("price", 1.0, stripped)
    words = stripped.replace("€", " EUR ").replace("$", " USD ").replace("£", " GBP ").split()
    scale, family, labels = 1.0, None, []
    for word in words:
        si = si_unit(word)
        if si is not None:
            scale, family = scale * si.scale, si.family
        elif word.lower() in _NAME_MAGNITUDES:
            scale *= _NAME_MAGNITUDES[word.lower()]
        elif word.upper() in _CURRENCIES:
            family = "money"
        labels.append(word)
    return Unit(family, scale, " ".join(labels) or stripped)


def _unit_from_tokens(tokens: list[str]) -> Unit:
    scale, family, labels = 1.0, None, []
    for index, token in enumerate(tokens):
        if token in _NAME_PERCENT:
            return PERCENT
        if token.upper() in _CURRENCIES or token in ("euro", "euros"):
            rest = [t for t in tokens[index + 1:index + 3] if t != "per"]
            following = rest[0] if rest else ""
            if _NAME_SI.match(following):
                return Unit("price", 1.0, f"{token.upper()}/{following}")
            family = "money"
            labels.append(token.upper())
        elif token in _NAME_MAGNITUDES and index > 0:  # "m" first is a word, not a magnitude
            scale *= _NAME_MAGNITUDES[token]
            labels.append(token)
        elif _NAME_SI.match(token) and index > 0:
            si = _si_from_lower(token)
            scale *= si.scale
            family = si.family
            labels.append(si.label)
    return Unit(family, scale, " ".join(labels))


def _si_from_lower(token: str) -> Unit:
    """`gwh` -> GWh, `mt` -> Mt (megatonnes): column names are written in lower case."""
    if token.startswith("t") and token != "t" and not token.startswith("tw"):
        token = "t"  # tco2, tco2e: tonnes
    if token.endswith(("co2", "co2e")):
        token = token.split("co2")[0]
    prefix = token[0].upper() if token[0] in "kmgt" and token not in ("t", "w", "wh") else ""
    prefix = "k" if prefix == "K" else prefix
    base = token[len(prefix):]
    base = {"wh": "Wh", "w": "W", "t": "t"}[base]
    return Unit(_FAMILY_OF_BASE[base], _PREFIXES[prefix], prefix + base)


def percentish(name: str, unit: Unit) -> bool:
    """A column a text may quote with `%`: a percent unit, or a name that says share or rate."""
    return unit.family == "percent" or bool(_PERCENTISH.intersection(name_tokens(name)))
