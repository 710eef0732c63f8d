"""spark-submit entry point: `deepflash train` (the logic lives in deepflash.jobs.train)."""
import sys

from deepflash.jobs.main import main

if __name__ == "__main__":
    sys.exit(main(["train"] + sys.argv[1:]))
