"""spark-submit entry point: `deepflash sample` (the logic lives in deepflash.jobs.sample)."""
import sys

from deepflash.jobs.main import main

if __name__ == "__main__":
    sys.exit(main(["sample"] + sys.argv[1:]))
