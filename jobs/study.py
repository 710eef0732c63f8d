"""spark-submit entry point: `deepflash study` (the logic lives in deepflash.jobs.study)."""
import sys

from deepflash.jobs.main import main

if __name__ == "__main__":
    sys.exit(main(["study"] + sys.argv[1:]))
