"""`report-pipeline bench`: the yardsticks as pure functions, and one tiny real bench run.

The timings themselves live in benchmarks/; here only that the bench runs end to end
against a real simulator process and reports every task done.
"""

from __future__ import annotations

import io

from report_pipeline.bench import Table, effective_concurrency, ideal_seconds, plan_bench, run_bench


def test_ideal_bound_is_the_largest_of_step_chain_pool_and_server_rate():
    assert ideal_seconds(300, 0.2, 50, steps=3) == 300 * 0.2 / 50  # the pool
    assert ideal_seconds(18, 1.0, 50, steps=3) == 3.0  # the chain of 3 steps
    assert ideal_seconds(300, 0.2, 50, steps=3, rate=20) == 15.0  # the server's limit


def test_effective_concurrency_counts_only_the_work_there_is():
    pools = {"objective_workers": 10, "task_workers": 10, "concurrency": 50}
    assert effective_concurrency("sequential", 40, 10, **pools) == 1
    assert effective_concurrency("objectives only", 3, 2, **pools) == 3
    assert effective_concurrency("tasks only", 10, 4, **pools) == 4
    assert effective_concurrency("both", 10, 4, **pools) == 40
    assert effective_concurrency("both", 40, 10, **pools) == 50  # capped by max_concurrent_requests


def test_a_one_minute_bench_fits_two_sizes_and_two_limits_and_a_tiny_one_keeps_the_smallest():
    minute = plan_bench(1.0, 0.2)
    assert minute.sizes == ((3, 2), (5, 3))
    assert minute.limits == (40, 80) and minute.rate_tasks == 100
    tiny = plan_bench(0.01, 0.01)
    assert tiny.sizes == ((3, 2),)
    assert tiny.limits == (40,) and tiny.rate_tasks >= 2


def test_table_renders_markdown_with_aligned_columns_and_notes():
    table = Table("T", ["a", "long header"])
    table.add("x", 1)
    table.notes.append("a note")
    assert table.markdown() == (
        "### T\n\n| a | long header |\n| - | ----------- |\n| x | 1           |\n\n- a note\n"
    )


def test_bench_runs_every_mode_and_a_rate_limit_against_the_simulator_with_no_task_lost():
    progress = io.StringIO()
    text = run_bench(minutes=0.01, latency_s=0.01, stream=progress)
    speedup_rows = [line for line in text.splitlines() if line.startswith("| 3x2")]
    assert [row.split("|")[2].strip() for row in speedup_rows] == [
        "sequential", "objectives only", "tasks only", "both",
    ]
    assert all(row.split("|")[4].strip() == "18" for row in speedup_rows)  # 3 x 2 tasks x 3 steps
    limit_rows = [line for line in text.splitlines() if line.startswith("| 40 ")]
    assert len(limit_rows) == 1
    assert limit_rows[0].split("|")[8].strip() == "0"  # tasks lost
    assert "3x2 both" in progress.getvalue()
