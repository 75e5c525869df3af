"""report-pipeline: an analyst's prompt sheet in, a finished report out.

The public names are re-exported here so internals can move.
"""

__version__ = "0.1.0"

from .config import RunConfig, load_config  # noqa: E402
from .errors import (  # noqa: E402
    AuthError,
    BudgetExceeded,
    ConfigError,
    InputError,
    Interrupted,
    LedgerError,
    PromptSheetError,
    ProviderError,
    RateLimited,
    ReportPipelineError,
    SheetProblem,
)

__all__ = [
    "__version__",
    "AuthError",
    "BudgetExceeded",
    "ConfigError",
    "InputError",
    "Interrupted",
    "LedgerError",
    "PromptSheetError",
    "ProviderError",
    "RateLimited",
    "ReportGenerationPipeline",
    "ReportPipelineError",
    "RunConfig",
    "RunResult",
    "SheetProblem",
    "load_config",
]


def __getattr__(name: str):
    # the pipeline pulls in pandas, docx and openpyxl: import it only when asked for
    if name in ("ReportGenerationPipeline", "RunResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
