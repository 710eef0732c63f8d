"""``deepflash <job>``: the argument parser over the registered jobs, and the ``main`` that the console
script and the ``jobs/*.py`` spark-submit scripts call.

Example:
    main(["train", "--config", "conf/default.yaml", "--set", "model.epochs=5"])
"""
from __future__ import annotations

import argparse
import logging
import sys

from deepflash.jobs import evolve, predict, sample, study, train, tune
from deepflash.jobs.base import Invocation, Job, TrackingFailedError, common_arguments
from deepflash.jobs.config import ConfigError, load_config, remote_url
from deepflash.jobs.console import setup_console

log = logging.getLogger("deepflash")

#: Every subcommand, in ``--help`` order. A new job is one module with a ``JOB`` and one entry here.
JOBS: tuple[Job, ...] = (
    train.JOB,
    tune.JOB,
    predict.JOB,
    study.JOB,
    sample.JOB,
    evolve.JOB,
)


def build_parser(jobs: tuple[Job, ...] = JOBS) -> argparse.ArgumentParser:
    """The ``deepflash`` parser: one subparser per job, each with the common options and its own."""
    parser = argparse.ArgumentParser(prog="deepflash", description="Keras on Spark: configured jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    for job in jobs:
        p = sub.add_parser(job.name, help=job.help)
        common_arguments(p, config_required=job.config_required)
        if job.arguments is not None:
            job.arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parses ``argv`` (default: ``sys.argv[1:]``), validates the config and runs the job.

    A config error exits with status 2 and a message naming the key, before Spark starts. A job
    whose outputs are in place but whose MLflow tracking failed exits with status 3.

    Args:
        argv: the subcommand and its arguments, e.g. ``["train", "--config", "conf/default.yaml"]``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    jobs = {job.name: job for job in JOBS}
    parser = build_parser()
    args = parser.parse_args(argv)
    job = jobs[args.command]
    setup_console()
    try:
        config = load_config(args.config, args.set) if args.config else {}
        if args.remote is not None:  # wins over the config's spark.remote and spark.master
            config = {**config, "spark": {**(config.get("spark") or {}),
                                          "remote": remote_url("--remote", args.remote)}}
    except ConfigError as e:
        parser.exit(2, f"deepflash {args.command}: config error: {e}\n")
    if job.output_required and not args.output:
        parser.exit(2, f"deepflash {args.command}: --output is required\n")
    output = args.output or (config.get("output") or {}).get("dir") or f"output/{args.command}"
    try:  # a job's own config checks (keys that only it requires) run before its Spark work
        job.run(Invocation(args.command, config, output, args.overwrite, args))
    except ConfigError as e:
        parser.exit(2, f"deepflash {args.command}: config error: {e}\n")
    except TrackingFailedError as e:
        parser.exit(e.exit_status, f"deepflash {args.command}: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
