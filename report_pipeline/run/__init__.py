"""A run: plan the tasks, schedule them on bounded pools, run each task's chain, collect results in order.

    plan.py        pure planning: which tasks, their parents, sheet order, critical path
    scheduler.py   the one scheduling loop (concurrent or inline), halts and the grace period
    runner.py      one task: render the prompt, run its steps (steps, outline, variants)
    gateway.py     every call passes here: the ledger's cache, then the provider
    results.py     `ReportStructureManager`: results under a lock, read back in sheet order
    outcome.py     what a run reports: `RunResult`, `RunObserver`, `WaveProgress`
    dryrun.py      `--dry-run`: render and price every call, send nothing
"""
