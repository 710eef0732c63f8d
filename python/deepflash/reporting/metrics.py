"""Evaluation: classification and regression metrics from Spark aggregations, error analysis,
the bias/variance diagnosis and satisficing model selection.

The metrics come from one aggregation over the predictions (a ``groupBy(label, prediction)``
count for classification, one ``agg`` for regression), so they scale with the data; only the
k x k confusion matrix reaches the driver.
"""
from __future__ import annotations

import math
import operator
import re
from typing import Any

import numpy as np


def confusion_matrix(predictions, label_col: str = "label", prediction_col: str = "prediction",
                     num_classes: int | None = None) -> np.ndarray:
    """counts[true, predicted] from a Spark ``groupBy`` of the two columns."""
    from pyspark.sql import functions as F

    for name, col in (("labelCol", label_col), ("predictionCol", prediction_col)):
        if col not in predictions.columns:
            raise ValueError(f"`{name}` {col!r} is not a column; the columns are: {', '.join(predictions.columns)}")
    rows = (predictions.groupBy(F.col(label_col).cast("int").alias("t"), F.col(prediction_col).cast("int").alias("p"))
            .count().collect())
    seen = max([max(r["t"], r["p"]) for r in rows if r["t"] is not None and r["p"] is not None] or [-1]) + 1
    k = max(seen, num_classes or 0)
    matrix = np.zeros((k, k), dtype=np.int64)
    for r in rows:
        if r["t"] is None or r["p"] is None:
            raise ValueError(f"null values in {label_col!r} or {prediction_col!r}: {r['count']} rows")
        matrix[r["t"], r["p"]] += r["count"]
    return matrix


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def metrics_from_confusion(matrix: np.ndarray, beta: float = 1.0, labels: list | None = None,
                           top_confused: int = 5) -> dict[str, Any]:
    """Accuracy; per-class precision, recall, F1, F-beta and accuracy; macro and weighted averages;
    the harmonic mean of per-class accuracy; and the most-confused (true, predicted) pairs."""
    if beta <= 0:
        raise ValueError(f"`beta` == {beta}, must be > 0")
    m = np.asarray(matrix, dtype=np.int64)
    k = m.shape[0]
    labels = list(labels) if labels is not None else list(range(k))
    total = m.sum()
    tp = np.diag(m).astype(float)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    b2 = beta * beta
    fbeta = _safe_div((1 + b2) * precision * recall, b2 * precision + recall)
    present = support > 0
    weights = support / total if total else np.zeros(k)
    # Per-class accuracy is the recall of that class; the harmonic mean punishes one bad class.
    class_acc = recall[present]
    harmonic = float(len(class_acc) / np.sum(1.0 / class_acc)) if len(class_acc) and np.all(class_acc > 0) else 0.0
    off = [(int(m[i, j]), i, j) for i in range(k) for j in range(k) if i != j and m[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    per_class = [{"label": labels[i], "support": int(support[i]), "precision": float(precision[i]),
                  "recall": float(recall[i]), "f1": float(f1[i]), "fbeta": float(fbeta[i]),
                  "accuracy": float(recall[i])}
                 for i in range(k)]
    return {
        "count": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "beta": float(beta),
        "macro": {name: float(np.mean(values[present])) if present.any() else 0.0
                  for name, values in (("precision", precision), ("recall", recall), ("f1", f1), ("fbeta", fbeta))},
        "weighted": {name: float(np.sum(values * weights))
                     for name, values in (("precision", precision), ("recall", recall), ("f1", f1), ("fbeta", fbeta))},
        "per_class": per_class,
        "harmonic_mean_class_accuracy": harmonic,
        "most_confused": [{"true": labels[i], "predicted": labels[j], "count": c,
                           "share_of_true": float(c / support[i])} for c, i, j in off[:top_confused]],
        "confusion_matrix": m.tolist(),
    }


def classification_report(predictions, label_col: str = "label", prediction_col: str = "prediction",
                          num_classes: int | None = None, beta: float = 1.0, labels: list | None = None) -> dict:
    """All classification metrics of a predictions DataFrame (one Spark aggregation)."""
    return metrics_from_confusion(confusion_matrix(predictions, label_col, prediction_col, num_classes), beta, labels)


def regression_report(predictions, label_col: str = "label", prediction_col: str = "prediction") -> dict:
    """MAE, MSE, RMSE and R² from one Spark aggregation."""
    from pyspark.sql import functions as F

    for name, col in (("labelCol", label_col), ("predictionCol", prediction_col)):
        if col not in predictions.columns:
            raise ValueError(f"`{name}` {col!r} is not a column; the columns are: {', '.join(predictions.columns)}")
    y, p = F.col(label_col).cast("double"), F.col(prediction_col).cast("double")
    row = predictions.agg(F.count(y).alias("n"), F.sum(F.abs(y - p)).alias("abs"), F.sum((y - p) ** 2).alias("sq"),
                          F.sum(y).alias("sy"), F.sum(y * y).alias("syy")).first()
    n = row["n"]
    if not n:
        raise ValueError("no rows to evaluate")
    mse = row["sq"] / n
    total = row["syy"] - row["sy"] ** 2 / n  # sum of squared deviations from the mean
    return {"count": int(n), "mae": row["abs"] / n, "mse": mse, "rmse": math.sqrt(mse),
            "r2": 1 - row["sq"] / total if total > 0 else float("nan")}


REMEDIES = {
    "bias": ["train a bigger network (more layers or units)", "train longer, or with a better optimizer "
             "(Adam, RMSprop, Nadam)", "search the architecture and hyperparameters (HyperoptSearch)",
             "reduce regularization (L2, dropout) if it is strong"],
    "variance": ["get more training data, or augment it (rotate, scale, shift, cut)",
                 "regularize: L1/L2 weight decay, dropout, batch normalization", "stop early on the dev set",
                 "search for an architecture that generalizes better"],
    "data_mismatch": ["make the training data more like the dev/test data (collect or synthesize it)",
                      "analyse the errors on dev/test that the model does not make on train",
                      "enlarge the dev set if it has been overfit by repeated selection"],
}


def diagnose(train_error: float, dev_error: float, test_error: float | None = None,
             human_error: float | None = None) -> dict:
    """Bias/variance diagnosis from error rates in [0, 1].

    avoidable bias = train - human (or Bayes) error; variance = dev - train;
    data mismatch = test - dev (dev and test drawn differently, or the dev set overfit by selection).
    Bias comes first: while the avoidable bias is at least as large as the variance, work on it.
    """
    for name, value in (("train_error", train_error), ("dev_error", dev_error), ("test_error", test_error),
                        ("human_error", human_error)):
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise ValueError(f"`{name}` == {value!r}, must be an error rate in [0, 1]")
    baseline = human_error if human_error is not None else 0.0
    gaps = {"bias": max(0.0, train_error - baseline), "variance": max(0.0, dev_error - train_error),
            "data_mismatch": max(0.0, test_error - dev_error) if test_error is not None else 0.0}
    if gaps["bias"] >= gaps["variance"] and gaps["bias"] >= gaps["data_mismatch"]:
        focus = "bias"
    elif gaps["variance"] >= gaps["data_mismatch"]:
        focus = "variance"
    else:
        focus = "data_mismatch"
    if max(gaps.values()) == 0:
        focus = "none"
    words = {"bias": "avoidable bias", "variance": "variance", "data_mismatch": "the dev/test mismatch"}
    reference = "human-level error" if human_error is not None else "0 (no human-level or Bayes error given)"
    if focus == "none":
        advice = "no avoidable bias, variance or mismatch is left: the model is at the reference error"
    else:
        advice = (f"work on {words[focus]} first ({gaps[focus]:.4f}); "
                  f"avoidable bias {gaps['bias']:.4f} against {reference}, variance {gaps['variance']:.4f}"
                  + (f", dev/test mismatch {gaps['data_mismatch']:.4f}" if test_error is not None else ""))
    return {"avoidable_bias": gaps["bias"], "variance": gaps["variance"], "data_mismatch": gaps["data_mismatch"],
            "focus": focus, "recommendation": advice, "remedies": REMEDIES.get(focus, [])}


_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_CONSTRAINT = re.compile(r"^\s*(<=|>=|==|<|>)\s*([-+0-9.eE]+)\s*$")


def parse_constraint(column: str, text: Any):
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = f"<= {text}"
    match = _CONSTRAINT.match(str(text))
    if not match:
        raise ValueError(f"constraint on {column!r}: {text!r} is not '<op> <number>' with op one of "
                         f"{', '.join(_OPS)}")
    return _OPS[match.group(1)], float(match.group(2))


def satisficing(trials, metric: str = "metric", mode: str = "max", constraints: dict | None = None):
    """The best row of a trials table by ``metric`` among rows that meet every constraint.

    Example: ``satisficing(found.trials, "metric", "max", {"latency_ms": "<= 100", "params": "<= 1e6"})``.
    Returns the row (a pandas Series) or raises ValueError saying which constraint excluded the rows.
    """
    import pandas as pd

    if mode not in ("max", "min"):
        raise ValueError(f"`mode` == {mode!r}, must be one of: max, min")
    if metric not in trials.columns:
        raise ValueError(f"`metric` {metric!r} is not a column of the trials; they have: {', '.join(trials.columns)}")
    rows = trials
    if "status" in rows.columns:
        rows = rows[rows["status"] == "ok"]
    rows = rows[pd.to_numeric(rows[metric], errors="coerce").notna()]
    for column, text in (constraints or {}).items():
        if column not in trials.columns:
            raise ValueError(f"constraint column {column!r} is not in the trials; "
                             f"they have: {', '.join(trials.columns)}")
        op, bound = parse_constraint(column, text)
        before = len(rows)
        rows = rows[op(pd.to_numeric(rows[column], errors="coerce"), bound)]
        if rows.empty:
            raise ValueError(f"no trial meets {column} {text} ({before} trials met the earlier constraints)")
    if rows.empty:
        raise ValueError("no successful trial to select from")
    values = pd.to_numeric(rows[metric])
    return rows.loc[values.idxmax() if mode == "max" else values.idxmin()]


def pareto_mask(trials, objectives) -> Any:
    """True for the ok trials that no other ok trial dominates: at least as good on every
    ``(column, mode)`` objective and better on one (``moocore.is_nondominated``); False for the others.

    Example: ``trials["pareto"] = pareto_mask(trials, [("val_accuracy", "max"), ("latency_ms", "min")])``.
    """
    import moocore
    import pandas as pd

    objectives = list(objectives)
    values = trials[[c for c, _ in objectives]].apply(pd.to_numeric, errors="coerce")
    candidates = values.notna().all(axis=1)
    if "status" in trials.columns:
        candidates &= trials["status"] == "ok"
    mask = pd.Series(False, index=trials.index)
    if candidates.any():
        front = moocore.is_nondominated(values[candidates].to_numpy(dtype=float),
                                        maximise=[mode == "max" for _, mode in objectives], keep_weakly=True)
        mask[candidates[candidates].index] = front
    return mask
