"""The workbook: read an analyst's .xlsx, check every cell, load its data tables, render its prompts.

    reader.py        the sheets into a `PromptSheet`, every problem at once (`validate_sheet`)
    data.py          data tables (CSV/XLSX), their `columns`, and the `filter` grammar (never eval)
    templates.py     prompt templates in Jinja's immutable sandbox
    dependencies.py  `depends_on` ids, expanded and checked for cycles
    starter.py       the starter workbook `report-pipeline init` writes (starter_files/)

Imports only the leaves (errors, config, models): nothing here knows about runs or models.
"""
