"""The optimizer study's run list."""
from __future__ import annotations

from deepflash.tuning.optimizer_study import DEFAULT_LR, plan_runs, results_table, to_markdown


def test_the_default_study_has_the_papers_26_runs():
    runs = plan_runs({})
    groups = [r["group"] for r in runs]
    assert groups.count("optimizers") == 14 and groups.count("lr_loss") == 9 and groups.count("batch_size") == 3
    assert {(r["preset"], r["optimizer"]) for r in runs if r["group"] == "optimizers"} == {
        (p, o) for p in ("simple", "deep")
        for o in ("sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamax", "nadam")}
    assert all(r["learningRate"] == DEFAULT_LR[r["optimizer"]] and r["batchSize"] == 128
               and r["loss"] == "categorical_crossentropy" for r in runs if r["group"] == "optimizers")
    assert {(r["learningRate"], r["loss"]) for r in runs if r["group"] == "lr_loss"} == {
        (lr, loss) for lr in (0.1, 0.01, 0.001) for loss in ("mae", "mse", "categorical_crossentropy")}
    assert sorted(r["batchSize"] for r in runs if r["group"] == "batch_size") == [16, 64, 256]
    assert [r["run"] for r in runs] == list(range(26))
    assert len({r["name"] for r in runs}) == 26


def test_overrides_shrink_the_study_and_the_table_renders():
    runs = plan_runs({"presets": ["deep"], "optimizers": ["adam"], "learning_rates": [], "batch_sizes": [32],
                      "epochs": 3})
    assert [(r["group"], r["preset"], r["batchSize"], r["epochs"]) for r in runs] == [
        ("optimizers", "deep", 128, 3), ("batch_size", "simple", 32, 3)]
    results = [{**r, "status": "ok", "test_accuracy": 0.5, "best_val_loss": 1.0, "train_seconds": 2.0,
                "num_params": 10} for r in runs]
    md = to_markdown(results_table(results))
    assert md.splitlines()[0].startswith("| run | group |") and "| 0.5000 |" in md and len(md.splitlines()) == 4
