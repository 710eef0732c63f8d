"""The contract between a job module and ``deepflash.jobs.main``: a :class:`Job` says how the
subcommand is called, an :class:`Invocation` is what it is called with.

Example:
    JOB = Job("train", "fit the configured model", lambda call: run(call.config, call.output, call.overwrite))
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Invocation:
    """One parsed command line: the validated config, the resolved output and the job's own arguments.

    Args:
        command: the subcommand, e.g. ``train``.
        config: the validated config (``{}`` when ``--config`` was not given and is optional).
        output: ``--output``, else the config's ``output.dir``, else ``output/<command>``.
        overwrite: ``--overwrite``.
        args: every parsed argument, for a job's own options (``args.model`` for ``predict``).
    """

    command: str
    config: dict
    output: str
    overwrite: bool
    args: argparse.Namespace


@dataclass(frozen=True)
class Job:
    """A subcommand of ``deepflash`` (and ``jobs/<name>.py``).

    Args:
        name: the subcommand.
        help: one line for ``deepflash --help``.
        run: called with the :class:`Invocation` after the config is validated.
        arguments: adds the job's own options to its parser (beyond ``--config``, ``--output``,
            ``--set``, ``--overwrite`` and ``--remote``, which every job has).
        config_required: ``--config`` must be given.
        output_required: ``--output`` must be given (no default from the config).
    """

    name: str
    help: str
    run: Callable[[Invocation], Any]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    config_required: bool = True
    output_required: bool = False


def common_arguments(parser: argparse.ArgumentParser, config_required: bool = True) -> None:
    """``--config``, ``--output``, ``--set KEY=VALUE`` (repeatable), ``--overwrite`` and ``--remote``."""
    parser.add_argument("--config", required=config_required,
                        help="YAML or JSON config, e.g. conf/default.yaml")
    parser.add_argument("--output", help="output directory (default: output.dir of the config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. model.epochs=5 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--remote", metavar="URL",
                        help="run on a Spark Connect server, e.g. sc://localhost:15002 (sets spark.remote)")


class TrackingFailedError(RuntimeError):
    """A job whose outputs are in place but whose MLflow tracking failed (``tracking.required``, the
    default); ``deepflash`` exits with status 3 on it.

    Args:
        message: names the output directory and the failed MLflow call.
        result: what the job's ``run`` would have returned.
    """

    exit_status = 3

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result
