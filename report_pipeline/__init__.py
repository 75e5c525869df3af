"""report-pipeline: an analyst's prompt sheet in, a finished report out.

The public names are re-exported here so internals can move.
"""

from typing import TYPE_CHECKING

from .errors import (
    AuthError,
    BudgetExceeded,
    ConfigError,
    EndpointUnreachable,
    InputError,
    Interrupted,
    LedgerError,
    PromptSheetError,
    ProviderError,
    RateLimited,
    ReportPipelineError,
    RunAborted,
    SheetProblem,
)
from .version import __version__

if TYPE_CHECKING:
    from .config import RunConfig, load_config
    from .pipeline import ReportGenerationPipeline
    from .run.outcome import RunResult

__all__ = [
    "__version__",
    "AuthError",
    "BudgetExceeded",
    "ConfigError",
    "EndpointUnreachable",
    "InputError",
    "Interrupted",
    "LedgerError",
    "PromptSheetError",
    "ProviderError",
    "RateLimited",
    "ReportGenerationPipeline",
    "ReportPipelineError",
    "RunAborted",
    "RunConfig",
    "RunResult",
    "SheetProblem",
    "load_config",
]


def __getattr__(name: str):
    # imported when first asked for: the pipeline pulls in pandas, docx and openpyxl, the config
    # pydantic, and a process that imports one small module of the package needs none of them
    if name in ("ReportGenerationPipeline", "RunResult"):
        from . import pipeline

        return getattr(pipeline, name)
    if name in ("RunConfig", "load_config"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
