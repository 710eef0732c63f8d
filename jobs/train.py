"""spark-submit entry point: ``spark-submit jobs/train.py --config conf/default.yaml [--set k=v]``."""
import sys

from deepflash.cli import main

if __name__ == "__main__":
    sys.exit(main(["train"] + sys.argv[1:]))
