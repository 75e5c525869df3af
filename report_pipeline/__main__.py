"""`python -m report_pipeline` is the `report-pipeline` command."""

from .cli import main

main()
