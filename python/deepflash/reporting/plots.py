"""Figures as PNG files (matplotlib, Agg backend): learning curves (with the learning rate), run
overlays, time against accuracy, the confusion matrix, search progress, evolutionary generations
and parallel coordinates.

Every function takes plain data (histories, tables, matrices), writes one PNG atomically and
returns its path. Every plot has a title, axis labels and a legend (or a colour bar).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SIZE = (8, 5)  # inches
DPI = 100      # so a figure is 800 x 500 pixels


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    import io

    from deepflash.io import fs

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _plt().close(fig)
    fs.write_bytes(fs.qualify(path, local=True), buf.getvalue())
    return path


def _finish(fig, ax, path: str, xlabel: str, ylabel: str, title: str, legend: dict | None = None) -> str:
    """Labels a one-axes figure's axes and title, draws its legend (``legend``: Matplotlib's
    options for it) and a light grid, and saves it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(**(legend or {}))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def curve_panels(history: Mapping[str, Sequence[float]]) -> list[str]:
    """The panels :func:`learning_curves` draws for ``history``: ``loss``, then accuracy or the first
    other metric, then ``lr`` when the history records the learning rate."""
    others = [k for k in history if not k.startswith("val_") and k not in ("loss", "lr", "learning_rate", "stage")]
    metric = "accuracy" if "accuracy" in history else (others[0] if others else None)
    return ["loss"] + ([metric] if metric else []) + (["lr"] if len(history.get("lr") or []) else [])


def stage_starts(history: Mapping[str, Sequence[float]]) -> list[tuple[int, int]]:
    """``(epoch, stage)`` for each cascade stage after the first: the 1-based epoch it starts at,
    from the history's ``stage`` series (empty without one).

    Example:
        >>> stage_starts({"stage": [1, 1, 2, 2, 2, 3]})
        [(3, 2), (6, 3)]
    """
    stages = list(history.get("stage") or [])
    return [(i + 1, int(s)) for i, s in enumerate(stages) if i and s != stages[i - 1]]


def learning_curves(history: Mapping[str, Sequence[float]], path: str, title: str = "Learning curves") -> str:
    """Train and validation loss, accuracy or the first other metric, and the learning rate per
    epoch (on a log scale, when the history has ``lr``), side by side. A cascade fit's history
    (with ``stage``) gets a dotted vertical line, labelled, where each stage after the first starts."""
    plt = _plt()
    if not history or "loss" not in history:
        raise ValueError(f"`history` needs at least a 'loss' series; it has: {', '.join(history) or 'nothing'}")
    keys = curve_panels(history)
    fig, axes = plt.subplots(1, len(keys), figsize=SIZE, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        if key == "lr":
            ax.plot(range(1, len(history["lr"]) + 1), history["lr"], "-", marker="o", markersize=3,
                    color="C2", label="learning rate")
            if min(history["lr"]) > 0:
                ax.set_yscale("log")
            ax.set_ylabel("learning rate")
        else:
            for name, style in ((key, "-"), (f"val_{key}", "--")):
                if name in history and len(history[name]):
                    ax.plot(range(1, len(history[name]) + 1), history[name], style, marker="o", markersize=3,
                            label="validation" if name.startswith("val_") else "train")
            ax.set_ylabel(key)
        for epoch, stage in stage_starts(history):
            ax.axvline(epoch - 0.5, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"stage {stage}", (epoch - 0.5, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                        xytext=(2, -10), textcoords="offset points", color="grey")
        ax.set_xlabel("epoch")
        ax.set_title("learning rate" if key == "lr" else key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def overlay(histories: Mapping[str, Mapping[str, Sequence[float]]], metric: str, path: str,
            title: str | None = None, xlabel: str = "epoch") -> str:
    """One line per run (e.g. per optimizer) of ``metric`` per epoch."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    drawn = 0
    for name, history in histories.items():
        values = history.get(metric) or []
        if len(values):
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=str(name))
            drawn += 1
    if not drawn:
        raise ValueError(f"no run has a {metric!r} series")
    return _finish(fig, ax, path, xlabel, metric, title or f"{metric} per epoch",
                   legend={"fontsize": "small", "ncol": 2})


def time_vs_accuracy(runs: Sequence[Mapping[str, Any]], path: str, x: str = "seconds", y: str = "test_accuracy",
                     label: str = "name", group: str | None = None,
                     title: str = "Training time against test accuracy") -> str:
    """A scatter of ``x`` against ``y``, one point per run, labelled; coloured by ``group`` if given."""
    plt = _plt()
    if not runs:
        raise ValueError("no runs to plot")
    fig, ax = plt.subplots(figsize=SIZE)
    groups = sorted({str(r.get(group)) for r in runs}) if group else ["runs"]
    for g in groups:
        members = [r for r in runs if not group or str(r.get(group)) == g]
        ax.scatter([r[x] for r in members], [r[y] for r in members], s=40, label=g)
        for r in members:
            ax.annotate(str(r.get(label, "")), (r[x], r[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    return _finish(fig, ax, path, x.replace("_", " "), y.replace("_", " "), title, legend={"title": group})


def confusion_heatmap(matrix: Sequence[Sequence[int]], path: str, labels: Sequence | None = None,
                      title: str = "Confusion matrix") -> str:
    """Counts per (true, predicted) pair, with the counts written in the cells."""
    plt = _plt()
    m = np.asarray(matrix)
    labels = [str(v) for v in (labels if labels is not None else range(len(m)))]
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(m, cmap="Blues")
    fig.colorbar(image, ax=ax, label="rows")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if len(m) <= 20:
        for i in range(len(m)):
            for j in range(len(m)):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    fig.tight_layout()
    return _save(fig, path)


def search_progress(trials, path: str, metric: str = "metric", mode: str = "max",
                    title: str = "Search progress") -> str:
    """Each trial's metric in trial order, failed trials marked, and the best so far."""
    plt = _plt()
    if trials is None or len(trials) == 0:
        raise ValueError("no trials to plot")
    t = trials.sort_values("trial")
    ok = t[t["status"] == "ok"]
    fig, ax = plt.subplots(figsize=SIZE)
    ax.scatter(ok["trial"], ok[metric], s=30, label="trial")
    values = ok[metric].to_numpy(dtype=float)
    best = np.maximum.accumulate(values) if mode == "max" else np.minimum.accumulate(values)
    ax.step(ok["trial"], best, where="post", color="C1", label="best so far")
    failed = t[t["status"] != "ok"]
    if len(failed):
        y = np.nanmin(values) if len(values) else 0.0
        ax.scatter(failed["trial"], [y] * len(failed), marker="x", color="C3", label="failed")
    return _finish(fig, ax, path, "trial", metric, title)


def generations(history: Sequence[Mapping[str, Any]], path: str, fitness: str = "fitness",
                title: str = "Evolutionary search") -> str:
    """Best, mean and worst fitness of each generation, and the best so far.

    Args:
        history: one row per generation with ``generation``, ``best``, ``mean``, ``worst`` and
            ``best_so_far`` (:meth:`deepflash.evolution.EvolutionResult.history_rows`).
        fitness: the y-axis label, e.g. ``validation MAE`` or ``log_p``.
    """
    plt = _plt()
    if not history:
        raise ValueError("no generations to plot")
    gens = [row["generation"] for row in history]
    fig, ax = plt.subplots(figsize=SIZE)
    ax.fill_between(gens, [row["worst"] for row in history], [row["best"] for row in history], color="C0",
                    alpha=0.15, label="worst to best")
    for key, style, color in (("best", "-o", "C0"), ("mean", "--", "C2"), ("worst", ":", "C3")):
        ax.plot(gens, [row[key] for row in history], style, color=color, markersize=4, label=key)
    ax.step(gens, [row["best_so_far"] for row in history], where="post", color="C1", linewidth=2,
            label="best so far")
    ax.set_xticks(gens)
    return _finish(fig, ax, path, "generation", fitness, title)


def parallel_coordinates(trials, params: Sequence[str], path: str, metric: str = "metric",
                         title: str = "Hyperparameters against the metric") -> str:
    """One polyline per successful trial across the hyperparameter axes, coloured by the metric.

    Numeric axes are scaled to [0, 1] (log scale when the values span more than 2 decades);
    categorical axes place their values evenly.
    """
    plt = _plt()
    ok = trials[trials["status"] == "ok"] if "status" in trials.columns else trials
    params = [p for p in params if p in ok.columns]
    if ok.empty or not params:
        raise ValueError("parallel coordinates need successful trials and at least one parameter column")
    axes_values, tick_labels = [], []
    for p in list(params) + [metric]:
        column = ok[p]
        numeric = np.issubdtype(column.dtype, np.number)
        if numeric:
            v = column.to_numpy(dtype=float)
            if (v > 0).all() and v.max() / v.min() > 100:
                v = np.log10(v)
            low, high = np.nanmin(v), np.nanmax(v)
            axes_values.append((v - low) / (high - low) if high > low else np.full_like(v, 0.5))
            tick_labels.append((f"{column.min():.3g}", f"{column.max():.3g}"))
        else:
            cats = sorted(column.astype(str).unique())
            pos = {c: i / max(1, len(cats) - 1) for i, c in enumerate(cats)}
            axes_values.append(np.array([pos[c] for c in column.astype(str)]))
            tick_labels.append((cats[0][:14], cats[-1][:14]))
    data = np.vstack(axes_values).T
    scores = ok[metric].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=SIZE)
    cmap = plt.get_cmap("viridis")
    norm = plt.Normalize(np.nanmin(scores), np.nanmax(scores))
    for row, score in zip(data, scores, strict=True):
        ax.plot(range(len(row)), row, color=cmap(norm(score)), alpha=0.7)
    names = list(params) + [metric]
    ticks = [f"{n}\n{lo} .. {hi}" for n, (lo, hi) in zip(names, tick_labels, strict=True)]
    ax.set_xticks(range(len(names)), ticks, fontsize=7)
    ax.set_ylabel("scaled value")
    ax.set_xlabel("hyperparameter")
    ax.set_title(title)
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(mappable, ax=ax, label=metric)
    ax.plot([], [], color=cmap(1.0), label="trial (colour = metric)")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def panels(results: Sequence[Mapping[str, Any]], row: str, col: str, metric: str, path: str,
           series: str = "history", title: str | None = None) -> str:
    """A grid of small learning-curve panels, one per (row value, column value), e.g. learning rate x loss."""
    plt = _plt()
    rows = sorted({r[row] for r in results}, key=str)
    cols = sorted({r[col] for r in results}, key=str)
    if not rows or not cols:
        raise ValueError("no results to plot")
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 2.4 * len(rows)), squeeze=False,
                             sharex=True)
    for i, rv in enumerate(rows):
        for j, cv in enumerate(cols):
            ax = axes[i][j]
            for r in results:
                if r[row] == rv and r[col] == cv:
                    h = r[series]
                    for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                        if h.get(key):
                            ax.plot(range(1, len(h[key]) + 1), h[key], style,
                                    label="validation" if key.startswith("val_") else "train")
            ax.set_title(f"{row}={rv}, {col}={cv}", fontsize=8)
            ax.grid(alpha=0.3)
            if i == len(rows) - 1:
                ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel(metric)
            if i == 0 and j == 0:
                ax.legend(fontsize="x-small")
    fig.suptitle(title or f"{metric} per epoch by {row} and {col}")
    fig.tight_layout()
    return _save(fig, path)


def goal_bars(goals: Sequence[Mapping[str, Any]], path: str, title: str = "Benchmark against its goals") -> str:
    """One horizontal bar per goal: the measured value divided by the goal's bound, so 1.0 is the bar
    to meet; bars that meet it are green. Each goal is ``{"goal", "value", "bound", "better"}`` with
    ``better`` "lower" (value <= bound meets it) or "higher"."""
    plt = _plt()
    goals = [g for g in goals if g.get("value") is not None]
    if not goals:
        raise ValueError("`goals` has no measured value to plot")
    fig, ax = plt.subplots(figsize=SIZE)
    names = [g["goal"] for g in goals]
    scaled = [g["value"] / g["bound"] if g["better"] == "lower" else g["bound"] / max(g["value"], 1e-12)
              for g in goals]
    colors = ["C2" if s <= 1.0 else "C3" for s in scaled]
    ax.barh(range(len(goals)), scaled, color=colors, label="measured / goal (<= 1 meets it)")
    ax.axvline(1.0, color="black", linestyle="--", label="goal")
    for i, g in enumerate(goals):
        ax.text(scaled[i], i, f" {g['value']:.2f} (goal {'<=' if g['better'] == 'lower' else '>='} {g['bound']:g})",
                va="center", fontsize=8)
    ax.set_yticks(range(len(goals)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("measured / goal (lower is better)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def pareto_front(trials, metrics: Sequence[str], modes: Sequence[str], path: str, chosen: int | None = None,
                 constraints: Mapping[str, str] | None = None, title: str = "Pareto front") -> str:
    """A two-metric search: every ok trial, the Pareto front (column ``pareto``) as a staircase, the
    satisficing bounds on the two axes as dashed lines, and the chosen trial circled."""
    from deepflash.reporting.metrics import parse_constraint

    plt = _plt()
    x, y = metrics
    ok = trials[trials["status"] == "ok"] if "status" in trials.columns else trials
    if ok.empty or "pareto" not in ok.columns:
        raise ValueError("a Pareto plot needs ok trials and their `pareto` column (a multi-objective search)")
    front = ok[ok["pareto"].astype(bool)].sort_values(x)
    fig, ax = plt.subplots(figsize=SIZE)
    ax.scatter(ok[x], ok[y], s=25, color="C0", alpha=0.5, label="trial")
    ax.step(front[x], front[y], where="post" if modes[0] != modes[1] else "pre", color="C1", alpha=0.6)
    ax.scatter(front[x], front[y], s=40, color="C1", label=f"Pareto front ({len(front)})")
    for column, text in (constraints or {}).items():
        if column in (x, y):
            _, bound = parse_constraint(column, text)
            (ax.axvline if column == x else ax.axhline)(bound, color="C3", linestyle="--",
                                                          label=f"{column} {text}")
    if chosen is not None and (ok["trial"] == chosen).any():
        row = ok[ok["trial"] == chosen].iloc[0]
        ax.scatter([row[x]], [row[y]], s=160, facecolors="none", edgecolors="C2", linewidths=2,
                   label=f"chosen (trial {chosen})")
    return _finish(fig, ax, path, f"{x} ({modes[0]})", f"{y} ({modes[1]})", title)



def budget_curves(runs: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]], path: str,
                  xlabel: str = "budget spent", ylabel: str = "best so far", title: str = "Best so far") -> str:
    """One colour per name, one step line per (x, y) run of it (e.g. per seed): the best so far
    against the budget spent."""
    plt = _plt()
    if not runs:
        raise ValueError("no runs to plot")
    fig, ax = plt.subplots(figsize=SIZE)
    for i, (name, lines) in enumerate(runs.items()):
        for j, (x, y) in enumerate(lines):
            ax.step(x, y, where="post", color=f"C{i}", alpha=0.8, label=name if j == 0 else None)
    return _finish(fig, ax, path, xlabel, ylabel, title)
