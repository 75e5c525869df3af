"""Text helpers every layer may use: Markdown heading levels, durations for people."""

from __future__ import annotations

import re
from collections.abc import Sequence

_ATX_HEADING = re.compile(r"^( {0,3})(#{1,6})(?=\s|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MAX_HEADING_LEVEL = 6


def nest_headings(text: str, level: int) -> str:
    """Shift the text's own `#` headings so the highest is at `level`, keeping relative levels.

    A section or variant we put under a heading of ours must not outrank it: a model often
    starts with `# Summary`. Fenced code is left alone; levels past 6 stay at 6.
    """
    lines = text.split("\n")
    fence: str | None = None
    found: list[tuple[int, re.Match[str]]] = []
    for number, line in enumerate(lines):
        fence, in_code = _fence_state(line, fence)
        if not in_code and (match := _ATX_HEADING.match(line)):
            found.append((number, match))
    if not found:
        return text
    shift = level - min(len(match.group(2)) for _, match in found)
    if shift <= 0:
        return text
    for number, match in found:
        depth = min(len(match.group(2)) + shift, _MAX_HEADING_LEVEL)
        lines[number] = match.group(1) + "#" * depth + lines[number][match.end():]
    return "\n".join(lines)


def _fence_state(line: str, fence: str | None) -> tuple[str | None, bool]:
    """(open fence after this line, whether this line is code or a fence)."""
    match = _FENCE.match(line)
    if fence is None:
        return (match.group(1)[0] * 3, True) if match else (None, False)
    if match and match.group(1).startswith(fence):
        return None, True
    return fence, True


def a_few(names: Sequence[str], shown: int = 3) -> str:
    """`a, b, c and 21 more`: a list a person can read in a log line, a CSV cell or a report."""
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def format_duration(seconds: float) -> str:
    """`42 s`, `12 min`, `1.5 h`: a duration as a progress line or a log line shows it."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


#: Words a column or table name writes in lower case that readers write otherwise.
_READABLE_WORDS = {
    "eu": "EU", "uk": "UK", "us": "US", "gdp": "GDP", "co2": "CO2", "ev": "EV", "evs": "EVs",
    "eur": "EUR", "usd": "USD", "gbp": "GBP", "pct": "%",
    "gw": "GW", "gwh": "GWh", "mw": "MW", "mwh": "MWh", "kw": "kW", "kwh": "kWh", "twh": "TWh",
    "mt": "Mt", "pv": "PV", "bev": "BEV", "phev": "PHEV", "ets": "ETS", "ttf": "TTF", "lng": "LNG",
}


def readable_name(name: str, *, capitalize: bool = True) -> str:
    """`renewable_share_pct` -> `Renewable share %`, `eu_generation` -> `EU generation`: a column or
    table name as a caption or table header says it, so a narrow column wraps between words."""
    words = [word for word in re.split(r"[_\s]+", str(name).strip()) if word]
    words = [_READABLE_WORDS.get(word, word) if word.islower() or word.isdigit() else word for word in words]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if capitalize and text[:1].islower() else text
