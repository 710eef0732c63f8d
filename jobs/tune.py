"""spark-submit entry point: `deepflash tune` (the logic lives in deepflash.jobs.tune)."""
import sys

from deepflash.jobs.main import main

if __name__ == "__main__":
    sys.exit(main(["tune"] + sys.argv[1:]))
