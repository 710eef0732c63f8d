"""Evaluation maths against small hand-computed cases, the bias/variance rules and satisficing."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from deepflash.reporting.metrics import (
    classification_report,
    confusion_matrix,
    diagnose,
    metrics_from_confusion,
    regression_report,
    satisficing,
)

# true \ predicted: class 0 has 3 rows (2 right), class 1 has 4 (3 right), class 2 has 3 (1 right)
LABELS = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
PREDS = [0, 0, 1, 1, 1, 1, 2, 2, 0, 0]


def test_confusion_matrix_from_spark(spark):
    rows = list(zip([float(v) for v in LABELS], [float(v) for v in PREDS], strict=True))
    df = spark.createDataFrame(rows, ["label", "prediction"])
    m = confusion_matrix(df)
    assert m.tolist() == [[2, 1, 0], [0, 3, 1], [2, 0, 1]]
    assert confusion_matrix(df, num_classes=5).shape == (5, 5)
    report = classification_report(df, beta=2.0)
    assert report["accuracy"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"`labelCol` 'y' is not a column; the columns are: label, prediction"):
        confusion_matrix(df, label_col="y")


def test_metrics_by_hand():
    r = metrics_from_confusion([[2, 1, 0], [0, 3, 1], [2, 0, 1]], beta=2.0)
    # precision = tp / predicted: 2/4, 3/4, 1/2; recall = tp / support: 2/3, 3/4, 1/3
    p = [0.5, 0.75, 0.5]
    rc = [2 / 3, 0.75, 1 / 3]
    f1 = [2 * a * b / (a + b) for a, b in zip(p, rc, strict=True)]
    f2 = [5 * a * b / (4 * a + b) for a, b in zip(p, rc, strict=True)]
    for i, row in enumerate(r["per_class"]):
        assert row["precision"] == pytest.approx(p[i])
        assert row["recall"] == pytest.approx(rc[i]) == pytest.approx(row["accuracy"])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["fbeta"] == pytest.approx(f2[i])
    assert [row["support"] for row in r["per_class"]] == [3, 4, 3]
    assert r["accuracy"] == pytest.approx(6 / 10)
    assert r["macro"]["precision"] == pytest.approx(sum(p) / 3)
    assert r["weighted"]["recall"] == pytest.approx(0.6)  # weighted recall is accuracy
    assert r["weighted"]["f1"] == pytest.approx((3 * f1[0] + 4 * f1[1] + 3 * f1[2]) / 10)
    assert r["harmonic_mean_class_accuracy"] == pytest.approx(3 / (3 / 2 + 4 / 3 + 3))
    assert r["most_confused"][0] == {"true": 2, "predicted": 0, "count": 2, "share_of_true": pytest.approx(2 / 3)}
    assert [(c["true"], c["predicted"]) for c in r["most_confused"]] == [(2, 0), (0, 1), (1, 2)]


def test_a_class_never_predicted_gets_zero_precision_and_zero_harmonic_mean():
    r = metrics_from_confusion([[5, 0], [3, 0]])
    assert r["per_class"][1]["precision"] == 0 and r["per_class"][1]["f1"] == 0
    assert r["harmonic_mean_class_accuracy"] == 0.0
    with pytest.raises(ValueError, match=r"`beta` == 0, must be > 0"):
        metrics_from_confusion([[1]], beta=0)


def test_regression_report_by_hand(spark):
    df = spark.createDataFrame([(1.0, 2.0), (2.0, 2.0), (3.0, 1.0), (6.0, 5.0)], ["label", "prediction"])
    r = regression_report(df)
    # errors: -1, 0, 2, 1; label mean 3, squared deviations 4+1+0+9 = 14
    assert r["mae"] == pytest.approx(1.0)
    assert r["mse"] == pytest.approx(1.5)
    assert r["rmse"] == pytest.approx(math.sqrt(1.5))
    assert r["r2"] == pytest.approx(1 - 6 / 14)
    with pytest.raises(ValueError, match="no rows"):
        regression_report(df.limit(0))


@pytest.mark.parametrize("errors, focus", [
    ((0.08, 0.10, 0.11, 0.01), "bias"),        # bias 0.07 > variance 0.02
    ((0.02, 0.10, 0.10, 0.01), "variance"),    # bias 0.01 < variance 0.08
    ((0.02, 0.03, 0.09, 0.01), "data_mismatch"),
    ((0.05, 0.05, 0.05, 0.05), "none"),
    ((0.05, 0.08, None, None), "bias"),        # no human error: bias measured against 0, and 0.05 >= 0.03
])
def test_bias_variance_rules(errors, focus):
    train, dev, test, human = errors
    d = diagnose(train, dev, test, human)
    assert d["focus"] == focus
    if focus == "bias":
        assert d["avoidable_bias"] == pytest.approx(train - (human or 0))
        assert any("bigger network" in r for r in d["remedies"])
        assert d["recommendation"].startswith("work on avoidable bias first")
    if focus == "variance":
        assert d["variance"] == pytest.approx(dev - train)
        assert any("regularize" in r for r in d["remedies"])
    if focus == "none":
        assert d["remedies"] == []


def test_bias_comes_first_on_a_tie_and_bad_errors_are_named():
    assert diagnose(0.05, 0.10, human_error=0.0)["focus"] == "bias"
    with pytest.raises(ValueError, match=r"`dev_error` == 1.5, must be an error rate in \[0, 1\]"):
        diagnose(0.1, 1.5)


def test_satisficing_selects_the_best_trial_that_meets_the_constraints():
    trials = pd.DataFrame({"trial": [0, 1, 2, 3], "status": ["ok", "ok", "ok", "failed"],
                           "metric": [0.95, 0.93, 0.90, float("nan")], "latency_ms": [150.0, 80.0, 20.0, 1.0],
                           "num_params": [2e6, 5e5, 1e5, 10]})
    assert satisficing(trials, "metric", "max")["trial"] == 0
    assert satisficing(trials, "metric", "max", {"latency_ms": "<= 100"})["trial"] == 1
    assert satisficing(trials, "metric", "max", {"latency_ms": "< 100", "num_params": "<= 2e5"})["trial"] == 2
    assert satisficing(trials, "latency_ms", "min")["trial"] == 2
    with pytest.raises(ValueError, match=r"no trial meets latency_ms <= 1 \(3 trials met the earlier constraints\)"):
        satisficing(trials, "metric", "max", {"latency_ms": "<= 1"})
    with pytest.raises(ValueError, match=r"'~100' is not '<op> <number>'"):
        satisficing(trials, "metric", "max", {"latency_ms": "~100"})
    with pytest.raises(ValueError, match=r"constraint column 'gpu' is not in the trials"):
        satisficing(trials, "metric", "max", {"gpu": "<= 1"})
