"""spark-submit entry point: `deepflash study` (the logic lives in deepflash.cli)."""
import sys

from deepflash.cli import main

if __name__ == "__main__":
    sys.exit(main(["study"] + sys.argv[1:]))
