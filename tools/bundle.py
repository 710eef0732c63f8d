"""Zips the deepflash package for ``spark-submit --py-files`` (atomically: temp file, then rename)."""
from __future__ import annotations

import os
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "python", "deepflash")


def main(target: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".zip", dir=os.path.dirname(os.path.abspath(target)))
    os.close(fd)
    try:
        count = 0
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for directory, dirs, files in os.walk(PACKAGE):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    if name.endswith(".py"):
                        path = os.path.join(directory, name)
                        zf.write(path, os.path.relpath(path, os.path.dirname(PACKAGE)))
                        count += 1
        os.chmod(tmp, 0o644)  # mkstemp makes it private; clusters read it as another user
        os.replace(tmp, target)
    except BaseException:
        os.remove(tmp)
        raise
    print(f"wrote {target} ({count} modules)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "dist", "deepflash.zip"))
