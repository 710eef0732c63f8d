"""``deepflash predict``: scores a Parquet path or a table with a saved PipelineModel; writes Parquet atomically.

Example:
    deepflash predict --model /tmp/digits/model --input /tmp/to_score.parquet --output /tmp/scored
"""
from __future__ import annotations

import argparse
import json
import logging

from deepflash.jobs.base import Job
from deepflash.jobs.outputs import open_output

log = logging.getLogger("deepflash")


def run(config: dict, model_path: str, input_path: str | None, table: str | None, output: str,
        overwrite: bool = False) -> int:
    """Scores ``input_path`` (Parquet) or ``table`` with the model at ``model_path``; returns the row count.

    Args:
        config: a validated config (only its ``spark`` section is used; may be ``{}``).
        model_path: a saved PipelineModel, e.g. ``<train output>/model``.
        input_path: a Parquet path to score, or None.
        table: a table to score, or None (exactly one of ``input_path`` and ``table``).
        output: the output Parquet directory.
        overwrite: replace an existing output.
    """
    from pyspark.ml import PipelineModel

    from deepflash.io import fs

    if bool(input_path) == bool(table):
        raise ValueError("give exactly one of --input (a Parquet path) or --table")
    spark, output, staging = open_output(config, output, overwrite)
    model_uri = fs.qualify(model_path, spark)
    if not fs.exists(fs.join(model_uri, "metadata")):
        raise FileNotFoundError(f"--model {model_path}: no saved model at {model_uri} "
                                "(expected <train output>/model)")
    with staging as out:
        model = PipelineModel.load(model_uri)
        df = spark.read.parquet(input_path) if input_path else spark.table(table)
        # The staging directory itself becomes the Parquet dataset (it is ours and empty).
        model.transform(df).write.mode("overwrite").parquet(out.uri)
        rows = spark.read.parquet(out.uri).count()
    log.info("scored %d rows into %s", rows, output)
    print(json.dumps({"output": output, "rows": rows}))
    return rows


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a saved PipelineModel, e.g. <train output>/model")
    parser.add_argument("--input", help="Parquet path to score")
    parser.add_argument("--table", help="table to score")


JOB = Job("predict", "score a Parquet path or table with a saved model",
          lambda call: run(call.config, call.args.model, call.args.input, call.args.table, call.output,
                           overwrite=call.overwrite),
          arguments=_arguments, config_required=False, output_required=True)
