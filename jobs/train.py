"""spark-submit entry point: `deepflash train` (the logic lives in deepflash.cli)."""
import sys

from deepflash.cli import main

if __name__ == "__main__":
    sys.exit(main(["train"] + sys.argv[1:]))
