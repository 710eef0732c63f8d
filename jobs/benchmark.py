"""spark-submit entry point of the benchmark (``gradle bench``); the logic lives in ``benchmarks.suite``.

    .venv/bin/spark-submit --master local[2] jobs/benchmark.py --help

The benchmarks are not part of the deepflash package: they are imported from the repository
root, which this script puts on the driver's ``sys.path``. The executors need only deepflash:
no benchmark function is shipped to them (the Spark work is the library's own stages and SQL),
and the streaming part's child processes get the root on their ``PYTHONPATH``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.suite import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
