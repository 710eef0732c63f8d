"""The scaling benchmark's arithmetic: per-step figures from a fit's fitInfo, the scaling
efficiency, the ring all-reduce model and its tables (no Spark, no cluster)."""
from __future__ import annotations

import pytest

from benchmarks import scaling
from benchmarks.scaling import modeled_efficiency, ring_allreduce_seconds, run_figures, warm_epoch_seconds


def _run(procs: int, epoch_seconds: list[float], steps_per_epoch: int, allreduce_ms: float = 1.0) -> dict:
    """One run of the driver's RESULT, as drive() writes it."""
    steps = steps_per_epoch * len(epoch_seconds)
    return {"preset": "mlp", "procs": procs, "batch_size": 100, "epoch_seconds": epoch_seconds,
            "allreduce": {"steps": steps, "seconds": steps * allreduce_ms / 1e3, "copy_seconds": 0.0,
                          "bytes": steps * 1_000_000}}


def test_the_warm_epoch_leaves_the_first_out():
    assert warm_epoch_seconds([9.0, 2.0, 4.0]) == 3.0
    assert warm_epoch_seconds([5.0]) == 5.0
    with pytest.raises(ValueError, match="no epoch"):
        warm_epoch_seconds([])


def test_per_step_figures_come_from_the_warm_epoch_and_the_all_reduce():
    r = run_figures(_run(1, [10.0, 1.0, 1.0], steps_per_epoch=100, allreduce_ms=2.0))
    assert r.steps_per_epoch == 100 and r.bytes_per_step == 1_000_000
    assert r.step_seconds == pytest.approx(0.01)
    assert r.allreduce_seconds == pytest.approx(0.002)
    assert r.compute_seconds == pytest.approx(0.008)
    assert r.samples_per_second == pytest.approx(100 / 0.01)


def test_efficiency_is_throughput_over_n_times_one_process():
    one = run_figures(_run(1, [5.0, 1.0], steps_per_epoch=100))       # 10 ms a step, 10,000 samples/s
    two = run_figures(_run(2, [5.0, 0.625], steps_per_epoch=50))      # 12.5 ms a step, 2 x 100 rows
    assert two.samples_per_second == pytest.approx(16_000)
    assert scaling.scaling_efficiency(one, two) == pytest.approx(0.8)


def test_the_ring_moves_two_n_minus_one_over_n_of_the_bytes_in_two_n_minus_one_hops():
    assert ring_allreduce_seconds(1e6, 1, 10) == 0.0   # one worker: nothing to send
    # 4 workers, 1 MB at 10 Gbit/s: 1.5 MB on the wire = 1.2 ms, and 6 hops of 50 us
    assert ring_allreduce_seconds(1e6, 4, 10, latency_s=50e-6) == pytest.approx(1.2e-3 + 6 * 50e-6)
    assert ring_allreduce_seconds(1e6, 4, 10, latency_s=0) == pytest.approx(1.2e-3)


def test_modeled_efficiency_and_the_compute_that_reaches_a_target():
    comm = ring_allreduce_seconds(1e6, 16, 10)
    assert modeled_efficiency(3 * comm, 1e6, 16, 10) == pytest.approx(0.75)
    t_c = scaling.compute_for_efficiency(1e6, 16, 10, 0.9)
    assert t_c == pytest.approx(9 * comm)
    assert modeled_efficiency(t_c, 1e6, 16, 10) == pytest.approx(0.9)


def test_the_tables_have_a_row_per_run_and_per_network():
    result = {"runs": [_run(1, [5.0, 1.0], 100), _run(2, [5.0, 0.625], 50)], "rows": {"mlp": 10_000},
              "batch_size": 100, "epochs": 2, "latency_s": 50e-6}
    runs = [run_figures(r) for r in result["runs"]]
    measured = scaling.measured_lines(runs)
    assert len(measured) == 2 + 2
    assert measured[2].endswith("| - |") and measured[3].endswith("| 0.80 |")
    modeled = scaling.model_lines(runs, workers=(4, 16), gbits=(10, 100))
    assert len(modeled) == 2 + 2 and "4 workers | 16 workers" in modeled[0]
    t_c = runs[0].compute_seconds
    assert f"| {modeled_efficiency(t_c, 1e6, 16, 10):.2f} |" in modeled[2]
    text = "\n".join(scaling.scaling_lines(result))
    assert "50 us per hop" in text and "10000 rows" in text


def test_a_run_without_a_one_process_partner_gets_no_efficiency():
    only = scaling.RunFigures("cnn", 2, 128, 10, 1.0, 0.001, 0.0, 4e5)
    assert scaling.measured_lines([only])[2].endswith("| - |")
