"""How the report names a data table and its columns: the data sheet's own words where it gives
them (`title`, `columns` entries `name: Label`), else the names in words (`Renewable share %`)."""

from __future__ import annotations

from ..models import DataSource
from ..text import readable_name

__all__ = ["column_label", "table_title"]


def column_label(source: DataSource, column: str, *, capitalize: bool = True) -> str:
    """What a reader sees for `column` of `source`: its label from the sheet, else its name in words."""
    for name, label in source.labels:
        if name == column:
            return label
    return readable_name(column, capitalize=capitalize)


def table_title(source: DataSource) -> str:
    """The table's `title` from the data sheet, else its name in words (`EU generation`)."""
    return source.title or readable_name(source.name)
