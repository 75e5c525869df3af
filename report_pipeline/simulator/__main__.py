"""``python -m report_pipeline.simulator``: see ``report_pipeline.simulator.main``."""

import sys

from report_pipeline.simulator._cli import main

sys.exit(main())
