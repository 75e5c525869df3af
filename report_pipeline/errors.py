"""Typed errors, each knowing the exit code the CLI gives it.

    ReportPipelineError                exit 1 unless a subclass says otherwise
    ├── InputError                     exit 2: bad input, nothing was run
    │   ├── PromptSheetError           the workbook (carries every SheetProblem)
    │   ├── ConfigError                a config key, file or flag
    │   ├── LedgerError                the ledger file is corrupt or foreign
    │   └── RunLocked                  another run is writing to the same output folder
    ├── TaskInputError                 one task's input cannot be used: that task fails
    │   ├── TemplateRenderError        its prompt does not render (also a ValueError)
    │   ├── DataSourceError            a data table does not load or fit (also a ValueError)
    │   └── AnswerError                an answer without the shape asked for (also a ValueError)
    ├── ProviderError                  a call failed: fails its task unless a subclass says more
    │   ├── RunAborted                 exit 2: every call would fail alike; the whole run stops
    │   │   ├── AuthError              401/403, or no quota left
    │   │   └── EndpointUnreachable    no attempt reached the endpoint, or its certificate is not trusted
    │   ├── NotSent                    the run is stopping: this call was never sent (its task is skipped)
    │   ├── RateLimited                429 after every retry
    │   └── TransientProviderError     5xx, timeouts, dropped connections after every retry
    ├── BudgetExceeded                 exit 3: max_cost_usd reached
    ├── EmptyShard                     exit 0: --shard I/N holds none of the family: nothing to run
    ├── OutputError                    exit 1: a file of the run could not be written
    └── Interrupted                    exit 130: Ctrl-C / SIGTERM

    AwaitingBatch (a BaseException)    not an error: batch mode parks a task until its wave is answered

The CLI maps these to exit codes in one place (`exit_code_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_TASKS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130


class ReportPipelineError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code: int = EXIT_TASKS_FAILED


class InputError(ReportPipelineError):
    """Bad input or config: nothing was run."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class SheetProblem:
    """One problem in a workbook, located so an analyst can find and fix it.

    `row` is the spreadsheet row number (1 = header row) and `column` the
    column header, so the message reads like `tasks!C7 (prompt): ...`.
    """

    sheet: str
    message: str
    row: int | None = None
    column: str | None = None
    cell: str | None = None  # e.g. "C7" when the column letter is known

    def __str__(self) -> str:
        where = self.sheet
        if self.cell:
            where += f"!{self.cell}"
        elif self.row is not None:
            where += f"!row {self.row}"
        if self.column:
            where += f" ({self.column})"
        return f"{where}: {self.message}"


class PromptSheetError(InputError):
    """The workbook has problems; `problems` lists every one of them."""

    def __init__(self, path: object, problems: list[SheetProblem]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{path}: {count} {noun} in the prompt sheet:\n{lines}")


class ConfigError(InputError):
    """A config key, file or flag is wrong; the message names the key."""


class LedgerError(InputError):
    """The ledger file cannot be used (corrupt, foreign, or locked)."""


class RunLocked(InputError):
    """Another run is writing to the same output folder."""


class TaskInputError(ReportPipelineError):
    """One task's own input cannot be used (its prompt, its data, an answer it needs): that task fails."""


class TemplateRenderError(TaskInputError, ValueError):
    """A prompt cannot be rendered: bad syntax, an unknown name, or a blocked access."""


class DataSourceError(TaskInputError, ValueError):
    """A data source cannot be loaded, or its `columns`/`filter` do not fit its file.

    `column` names the `data` sheet column to fix (path, sheet, columns, filter),
    so the validator can point at the right cell.
    """

    def __init__(self, message: str, *, column: str = "path") -> None:
        super().__init__(message)
        self.column = column


class AnswerError(TaskInputError, ValueError):
    """An answer that does not have the shape asked for; the message says how, in a few words."""


class ProviderError(ReportPipelineError):
    """A call to the model failed; fails one task unless a subclass says more."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        attempts: int = 1,
        objective_id: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.attempts = attempts
        self.objective_id = objective_id
        self.task_id = task_id

    def __str__(self) -> str:
        where = ""
        if self.objective_id and self.task_id:
            where = f"[{self.objective_id}.{self.task_id}] "
        status = f"HTTP {self.status_code}: " if self.status_code else ""
        return f"{where}{status}{self.message}"


class RunAborted(ProviderError):
    """Every call would fail the same way: the whole run stops (exit 2), and tasks not yet
    sent are skipped, for a rerun once the cause is fixed."""

    exit_code = EXIT_BAD_INPUT


class AuthError(RunAborted):
    """401/403: the key is wrong or lacks access."""


class EndpointUnreachable(RunAborted):
    """No attempt of the run has reached the endpoint (connection refused, no such host),
    and one call has spent all its retries on it: the others would only do the same."""


class NotSent(ProviderError):
    """The run is stopping (Ctrl-C, SIGTERM): this call was never sent, so its task is skipped, not failed."""


class RateLimited(ProviderError):
    """Still 429 after every retry."""


class TransientProviderError(ProviderError):
    """5xx, timeout or dropped connection, still failing after every retry."""


class BudgetExceeded(ReportPipelineError):
    """max_cost_usd was reached: nothing new is sent."""

    exit_code = EXIT_BUDGET


class EmptyShard(ReportPipelineError):
    """`--shard I/N` of a family smaller than N may hold no entity: not a failure (a job runner starts
    every index), so nothing runs, nothing is written, and the exit code is 0."""

    exit_code = EXIT_OK


class OutputError(ReportPipelineError):
    """The run could not write one of its files (a full disk, a folder made read-only meanwhile).

    Every answer paid so far is in the ledger, so `--resume` rewrites the outputs for free.
    """


class Interrupted(ReportPipelineError):
    """The run was stopped by Ctrl-C or SIGTERM."""

    exit_code = EXIT_INTERRUPTED


def exit_code_for(error: BaseException) -> int:
    """The one place that turns an error into a process exit code."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, ReportPipelineError):
        return error.exit_code
    return EXIT_TASKS_FAILED


class AwaitingBatch(BaseException):
    """Batch mode: this call is not answered yet; the task is parked until its wave comes back.

    A BaseException, not an Exception, so that no `except Exception` on the way (a
    section, a variant, a template) mistakes it for a failure: it must reach the
    scheduler, which parks the task and re-runs it after the wave.
    """

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label
