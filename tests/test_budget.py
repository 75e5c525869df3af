"""max_cost_usd is a hard cap: every call's worst case is reserved before it is sent (pure meter, then whole
runs on the simulator with prices high enough that one call matters)."""

from __future__ import annotations

import json
import random
import threading

import pytest

from report_pipeline.errors import BudgetExceeded
from report_pipeline.providers.budget import CostMeter
from tests.test_pipeline_simulator import openai_config, run
from tests.workbooks import simple_workbook

EXPENSIVE = {"sim-small": {"input": 10_000.0, "output": 10_000.0}}  # $0.01 a token


def test_a_call_is_held_at_its_worst_case_and_settled_at_its_cost() -> None:
    meter = CostMeter(3.0)
    first = meter.reserve(1.5)
    second = meter.reserve(1.5)
    first.settle(0.25)  # answered: it cost less than its worst case
    assert (meter.spent, meter.reserved) == (0.25, 1.5)
    third = meter.reserve(1.25)  # what the first freed
    second.release()  # failed: it cost nothing
    third.settle(1.0)
    third.settle(5.0)  # once only
    assert (meter.spent, meter.reserved) == (1.25, 0.0)


def test_a_call_whose_worst_case_passes_the_cap_on_its_own_says_to_lower_max_tokens() -> None:
    with pytest.raises(BudgetExceeded, match="more than max_cost_usd \\$3.00 on its own: nothing is sent. Lower max_tokens"):
        CostMeter(3.0).reserve(8.0, what="call o.t.generate")


def test_a_call_that_fits_once_the_calls_in_flight_settle_waits_for_them_and_one_that_never_fits_stops() -> None:
    meter = CostMeter(3.0)
    held = meter.reserve(2.0)
    got: list[object] = []
    waiting = threading.Thread(target=lambda: got.append(meter.reserve(1.5)))
    waiting.start()
    held.settle(0.5)  # it cost less than its worst case: now 1.5 fits
    waiting.join(10)
    assert got and meter.reserved == 1.5
    with pytest.raises(BudgetExceeded, match=r"\$0\.5000 spent of max_cost_usd \$3\.00; call x could cost up to \$2\.6000"):
        meter.reserve(2.6, what="call x")  # more than what is left even when nothing is in flight


def test_stopping_wakes_a_call_waiting_for_room() -> None:
    from report_pipeline.providers.ratelimit import Stopped

    meter = CostMeter(3.0)
    meter.reserve(2.0)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            meter.reserve(1.5)
        except Stopped as error:
            errors.append(error)

    waiting = threading.Thread(target=wait)
    waiting.start()
    meter.stop()
    waiting.join(10)
    assert len(errors) == 1


def test_threads_reserving_and_settling_at_once_never_hold_or_spend_more_than_the_cap() -> None:
    meter = CostMeter(10.0)
    worst_seen = [0.0]
    lock = threading.Lock()
    start = threading.Barrier(16)
    rng = random.Random(7)
    costs = [[rng.uniform(0.0, 0.3) for _ in range(40)] for _ in range(16)]

    def work(mine: list[float]) -> None:
        start.wait()
        for cost in mine:
            try:
                reservation = meter.reserve(0.3)
            except BudgetExceeded:
                return
            with lock:
                worst_seen[0] = max(worst_seen[0], meter.spent + meter.reserved)
            reservation.settle(cost)

    threads = [threading.Thread(target=work, args=(mine,)) for mine in costs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert worst_seen[0] <= 10.0 + 1e-9 and meter.spent <= 10.0 and meter.reserved == pytest.approx(0.0, abs=1e-9)


def _paid(result) -> float:
    return json.loads((result.run_dir / "run.json").read_text())["cost_usd"]


def test_the_issues_case_spends_no_more_than_the_cap(tmp_path, make_simulator):
    """$10,000 per million tokens, max_cost_usd 3, two in flight: a run used to spend $5.21."""
    sim = make_simulator(latency_s=0.02)
    sheet = simple_workbook(tmp_path / "wb", 3, 4)
    result = run(sheet, openai_config(sim, tmp_path / "out", prices=EXPENSIVE, max_cost_usd=3.0,
                                      max_concurrent_requests=2, max_tokens=40))
    assert result.exit_code == 3 and result.status == "budget"
    assert 0 < _paid(result) <= 3.0
    assert any(r.status == "done" for r in result.results)


def test_a_max_tokens_too_big_for_the_cap_sends_nothing_and_says_why(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = simple_workbook(tmp_path / "wb", 1, 2)
    result = run(sheet, openai_config(sim, tmp_path / "out", prices=EXPENSIVE, max_cost_usd=3.0, max_tokens=800))
    assert result.exit_code == 3 and sim.stats()["calls"] == 0
    assert "Lower max_tokens" in json.loads((result.run_dir / "run.json").read_text())["halt_reason"]


@pytest.mark.parametrize("seed", range(6))
def test_randomised_runs_never_overshoot_the_cap(tmp_path, make_simulator, seed):
    rng = random.Random(seed)
    sim = make_simulator(latency_s=0.01, latency_jitter_s=0.05, seed=seed)
    sheet = simple_workbook(tmp_path / "wb", rng.randint(2, 4), rng.randint(2, 5))
    cap = rng.uniform(1.0, 6.0)
    result = run(sheet, openai_config(sim, tmp_path / "out", prices=EXPENSIVE, max_cost_usd=cap,
                                      max_concurrent_requests=rng.randint(1, 8), max_tokens=rng.randint(20, 60),
                                      steps=rng.choice(["generate", "generate, refine"])))
    assert _paid(result) <= cap + 1e-9  # the largest overshoot over these runs is 0
