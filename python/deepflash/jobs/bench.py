"""``deepflash bench``: the benchmark, with its own arguments (``deepflash bench -- --help``).

Example:
    deepflash bench --rows 6000 --epochs 1 --skip hvd1,hvd2,algos,best
"""
from __future__ import annotations

from deepflash.jobs.base import Job


def run(argv: list[str]) -> int:
    """Runs ``deepflash.benchmark.main`` on the arguments after ``bench`` (a ``--`` separator is dropped)."""
    from deepflash.benchmark import main

    return main([a for a in argv if a != "--"])


JOB = Job("bench", "the benchmark (arguments: deepflash bench -- --help)", passthrough=run)
