"""``deepflash study``: the optimizer / learning-rate / loss / batch-size study, one Spark task per
run; writes results.csv, results.md, results.json, plots and a report, then logs them to an MLflow
run. A tracking failure leaves the outputs in place and is recorded in results.json
(``tracking_error``).

Example:
    deepflash study --config conf/study_optimizers.yaml --set study.epochs=2
"""
from __future__ import annotations

import logging
import os
import time

from deepflash.jobs.base import Job
from deepflash.jobs.console import phase
from deepflash.jobs.outputs import local_files, open_output, settle_tracking, start_tracking, write_json
from deepflash.jobs.sources import load_data, pipeline_stages

log = logging.getLogger("deepflash")


def run(config: dict, output: str, overwrite: bool = False) -> list:
    """Runs the study's grid and writes its table, figures and report atomically; returns one dict per run.

    Args:
        config: a validated config with a ``study`` section (``model.backend`` defaults to ``local``).
        output: the output directory.
        overwrite: replace an existing output.
    """
    from deepflash import KerasEstimator
    from deepflash.reporting.report import write_report
    from deepflash.tuning.optimizer_study import figures, results_table, run_study, to_markdown

    model_conf = {k: v for k, v in (config.get("model") or {}).items()}
    model_conf.setdefault("backend", "local")
    estimator = KerasEstimator(**model_conf)
    spark, output, staging = open_output(config, output, overwrite)
    tracking = start_tracking(config, output, "deepflash-study")
    with staging as out:
        train_df, test_df = load_data(spark, config.get("data") or {})
        stages = pipeline_stages(estimator, config.get("data") or {})
        if len(stages) > 1:  # assemble raw feature columns once, up front
            train_df, test_df = stages[0].transform(train_df), stages[0].transform(test_df)
        started = time.time()
        results = run_study(spark, estimator, train_df, test_df, config.get("study") or {})
        seconds = time.time() - started
        table = results_table(results)
        table.to_csv(os.path.join(out.local, "results.csv"), index=False)
        markdown = to_markdown(table.drop(columns=["error"]) if table["error"].isna().all() else table)
        with open(os.path.join(out.local, "results.md"), "w") as f:
            f.write(markdown + "\n")
        write_json(os.path.join(out.local, "results.json"), {"seconds": seconds, "runs": results, "config": config})
        with phase("drew the plots"):
            paths = figures(results, os.path.join(out.local, "plots"))
        with phase("wrote report.html"):
            write_report(os.path.join(out.local, "report.html"), "deepflash optimizer study", config=config,
                         tables={"Results": table}, plots=paths, notes=[f"{len(results)} runs in {seconds:.0f}s"])
        plot_names = [os.path.relpath(p, out.local) for p in paths]
    tracker = tracking.start_run("study", {"runs": len(results)}, tags={"deepflash.job": "study"})
    if tracker is not None:
        # A failed MLflow call warns and turns the tracker off: then no "logged" line.
        with tracker, phase("logged the results, plots and report to MLflow", ok=lambda: tracker.failure is None), \
                local_files(output, [*plot_names, "results.csv", "results.md", "report.html"]) as files:
            tracker.log_metrics({f"test_accuracy.{r['run']:02d}": r["test_accuracy"] for r in results
                                 if r["status"] == "ok"})
            tracker.log_files(files[:len(plot_names)], "plots")
            tracker.log_files(files[len(plot_names):])
    print(markdown)
    failed = [r for r in results if r["status"] != "ok"]
    if failed:
        log.warning("%d of %d study runs failed; the first: %s", len(failed), len(results), failed[0]["error"])
    settle_tracking(tracking, tracker.failure if tracker is not None else None, output, "results.json", results)
    return results


JOB = Job("study", "the optimizer / learning-rate / loss / batch-size study",
          lambda call: run(call.config, call.output, overwrite=call.overwrite))
