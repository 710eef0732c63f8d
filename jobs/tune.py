"""spark-submit entry point: `deepflash tune` (the logic lives in deepflash.cli)."""
import sys

from deepflash.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune"] + sys.argv[1:]))
