"""The ledger: every run, task and call in SQLite; the cache; the run lock; run history.

    store.py       `Ledger`: WAL, a writer thread, the cache key, learned limits, batches
    migrations.py  numbered schema migrations, each committed with its record
    runlock.py     one run per output folder; a dead run's lock is taken over
    history.py     `report-pipeline runs`, read-only
"""
