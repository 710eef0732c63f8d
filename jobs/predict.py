"""spark-submit entry point: `deepflash predict` (the logic lives in deepflash.cli)."""
import sys

from deepflash.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict"] + sys.argv[1:]))
