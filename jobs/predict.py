"""spark-submit entry point: `deepflash predict` (the logic lives in deepflash.jobs.predict)."""
import sys

from deepflash.jobs.main import main

if __name__ == "__main__":
    sys.exit(main(["predict"] + sys.argv[1:]))
