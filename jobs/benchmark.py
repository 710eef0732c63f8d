"""spark-submit entry point: `deepflash bench` (the logic lives in deepflash.benchmark)."""
import sys

from deepflash.jobs.main import main

if __name__ == "__main__":
    sys.exit(main(["bench"] + sys.argv[1:]))
