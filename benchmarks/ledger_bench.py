"""The ledger under load: N threads record calls at once, then one flush.

    python benchmarks/ledger_bench.py --calls 10000 --threads 16
    python benchmarks/ledger_bench.py --compare   # also: every thread commits its own insert

Prints how long the recording threads were held up (per record_call and in total), when
the last call was committed (flush returned), and cache lookups per second. Payloads are
report-sized: a ~2 KB prompt and a ~1.5 KB answer per call. The ledger is a real file in
a temporary folder (or --dir).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from report_pipeline.ledger.store import Ledger, request_hash

SYSTEM = "You are an analyst writing one section of a quarterly report. " * 8
PROMPT = "Summarise the table below for a board audience.\n\n" + "| region | revenue | growth |\n" * 60
ANSWER = "Revenue grew in every region; the north led with 12 % growth. " * 24


def bench_ledger(folder: Path, calls: int, threads: int) -> dict[str, float]:
    ledger = Ledger(folder / "ledger.sqlite")
    ledger.start_run("bench", "bench.xlsx", "s", "c", calls)
    per_thread = calls // threads
    start = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def work(n: int) -> None:
        mine = latencies[n]
        start.wait()
        for i in range(per_thread):
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{PROMPT} #{n}.{i}"}]
            key = request_hash("openai", None, {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2})
            t0 = time.perf_counter()
            ledger.record_call(
                run_id="bench", task_key=f"O{n}.T{i}", step="generate", request_hash=key, provider="openai",
                base_url=None, model="gpt-4o-mini", messages=messages, response_text=ANSWER, prompt_tokens=600,
                completion_tokens=350, cost_usd=0.0003, latency_s=1.2, attempts=1, status="ok",
            )
            mine.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    t0 = time.perf_counter()
    for worker in workers:
        worker.join()
    recorded = time.perf_counter() - t0
    ledger.flush()
    committed = time.perf_counter() - t0

    keys = [row[0] for row in sqlite3.connect(folder / "ledger.sqlite").execute("SELECT request_hash FROM calls")]
    t1 = time.perf_counter()
    hits = sum(ledger.cached_response(key) is not None for key in keys[:5000])
    lookup = time.perf_counter() - t1
    ledger.close()
    flat = sorted(x for per in latencies for x in per)
    return {
        "calls": len(flat),
        "all_recorded_s": recorded,
        "all_committed_s": committed,
        "record_call_p50_us": statistics.median(flat) * 1e6,
        "record_call_p99_us": flat[int(len(flat) * 0.99)] * 1e6,
        "record_call_max_ms": flat[-1] * 1e3,
        "lookups_per_s": min(len(keys), 5000) / lookup,
        "hits": hits,
    }


def bench_naive(folder: Path, calls: int, threads: int) -> dict[str, float]:
    """For comparison: every thread has its own connection and commits each insert itself."""
    Ledger(folder / "naive.sqlite").close()
    per_thread = calls // threads
    start = threading.Barrier(threads + 1)
    latencies: list[float] = []

    def work(n: int) -> None:
        db = sqlite3.connect(folder / "naive.sqlite", timeout=60, isolation_level=None)
        db.execute("PRAGMA synchronous = NORMAL")
        start.wait()
        for i in range(per_thread):
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{PROMPT} #{n}.{i}"}]
            key = request_hash("openai", None, {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2})
            t0 = time.perf_counter()
            db.execute(
                "INSERT INTO calls (run_id, task_key, step, request_hash, provider, model, prompt, response,"
                " status, created_at) VALUES ('bench', ?, 'generate', ?, 'openai', 'm', ?, ?, 'ok', 0)",
                (f"O{n}.T{i}", key, json.dumps(messages, ensure_ascii=False), ANSWER),
            )
            latencies.append(time.perf_counter() - t0)
        db.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    t0 = time.perf_counter()
    for worker in workers:
        worker.join()
    flat = sorted(latencies)
    return {
        "all_committed_s": time.perf_counter() - t0,
        "insert_p50_us": statistics.median(flat) * 1e6,
        "insert_p99_us": flat[int(len(flat) * 0.99)] * 1e6,
        "insert_max_ms": flat[-1] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--dir", type=Path, help="where to put the ledger (default: a temporary folder)")
    parser.add_argument("--compare", action="store_true", help="also time one commit per insert from every thread")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        result = bench_ledger(folder, args.calls, args.threads)
        print(f"ledger: {args.calls} calls from {args.threads} threads")
        for name, value in result.items():
            print(f"  {name:22} {value:,.1f}")
        if args.compare:
            print("naive: one connection per thread, one commit per insert")
            for name, value in bench_naive(folder, args.calls, args.threads).items():
                print(f"  {name:22} {value:,.1f}")


if __name__ == "__main__":
    main()
