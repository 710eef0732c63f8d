"""spark-submit entry point: `deepflash bench` (the logic lives in deepflash.cli)."""
import sys

from deepflash.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench"] + sys.argv[1:]))
