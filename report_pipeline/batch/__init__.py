"""Batch mode (`--batch`, `execution: batch`): a run's calls through the provider's Batch API, in waves.

    lines.py    requests -> JSONL lines -> batches (pure); result lines -> answers
    backend.py  where batches go: the openai SDK's /files and /batches, or offline
    waves.py    the runner's call function and the scheduler's wave hook
"""
