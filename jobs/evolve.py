"""spark-submit entry point: `deepflash evolve` (the logic lives in deepflash.jobs.evolve)."""
import sys

from deepflash.jobs.main import main

if __name__ == "__main__":
    sys.exit(main(["evolve"] + sys.argv[1:]))
