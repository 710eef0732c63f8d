"""Every code example of README.md and docs/**/*.md runs.

Each page's fenced ``python`` blocks run in order in one namespace, like a notebook, in a temporary
working directory (for the files Python writes; Spark resolves a relative path against its JVM's
directory, so the examples save under ``/tmp``), on the suite's SparkSession (``spark`` is in the namespace, and
``SparkSession.builder.getOrCreate()`` returns it). A block whose example needs what this suite may
not have is marked by an HTML comment on the line before its fence, ``<!-- example: needs WHAT -->``:

- ``fashion-mnist``: runs where Debian's dataset-fashion-mnist is installed, else skipped;
- ``horovod``: runs where Horovod is installed (the classic profile), else skipped;
- ``keras-3``: runs where Keras 3 runs with PyTorch and JAX installed (the modern profile), else
  skipped; ``gradle test`` runs the pages in MODERN_PAGES in its modern pass;
- ``cluster``, ``gpu``, ``mlflow-server``: skipped with that reason (the multi-node scenarios run
  in tests/cluster, as separate spark-submit drivers).

A skipped block is left out and the page's later blocks still run (so nothing after a marked block
may use what it defines); the page then reports as skipped, naming the blocks left out. A ``yaml``
block marked ``<!-- example: config -->`` is a whole job config and is validated with
``deepflash.jobs.config.validate``. Other blocks (bash, text) are not run.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

from deepflash.jobs.config import validate

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
MARK = re.compile(r"<!--\s*example:\s*(?P<what>[\w -]+?)\s*-->\s*$")
NEEDS = {"fashion-mnist", "horovod", "keras-3", "cluster", "gpu", "mlflow-server"}
KINDS = {"config"} | {f"needs {n}" for n in NEEDS}


def examples(page: Path) -> list[tuple[int, str, str, str | None]]:
    """The page's fenced blocks as (line, language, code, mark), code dedented to the fence."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        indent = len(match.group("indent"))
        body = "".join(x[indent:] for x in match.group("body").splitlines(keepends=True))
        found.append((line, match.group("lang"), body, mark.group("what") if mark else None))
    return found


def missing(mark: str) -> str | None:
    """Why a block marked ``needs ...`` cannot run here, or None when it can."""
    need = mark.removeprefix("needs ")
    if need == "fashion-mnist":
        from deepflash.data.datasets import FASHION_MNIST_DIR

        return None if os.path.isdir(FASHION_MNIST_DIR) else f"needs Fashion-MNIST in {FASHION_MNIST_DIR}"
    if need == "horovod":
        return None if importlib.util.find_spec("horovod") else "needs Horovod, which this profile does not install"
    if need == "keras-3":
        from deepflash.networks.keras_compat import keras_major

        ready = keras_major() >= 3 and all(importlib.util.find_spec(m) for m in ("torch", "jax"))
        return None if ready else "needs Keras 3 with PyTorch and JAX (the modern profile)"
    return {"cluster": "needs a multi-node cluster (the scenarios run in tests/cluster)",
            "gpu": "needs a GPU", "mlflow-server": "needs an MLflow tracking server"}[need]


def test_every_mark_is_known_and_the_readme_leads_with_the_quick_start():
    for page in PAGES:
        for line, _, _, mark in examples(page):
            assert mark is None or mark in KINDS, f"{page.relative_to(ROOT)}:{line}: unknown mark {mark!r}"
    first = next(code for _, lang, code, _ in examples(ROOT / "README.md") if lang == "python")
    assert 'backend="barrier"' in first and "numProc=2" in first
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


# Pages whose examples the connect pass of `gradle test` runs again, on a Spark Connect session.
CONNECT_PAGES = {ROOT / "docs" / "connect.md"}
# Pages about Keras 3 only: `gradle test` runs their examples in its modern pass.
MODERN_PAGES = {ROOT / "docs" / "frameworks.md"}


def _page_param(page: Path):
    if page in CONNECT_PAGES:
        return pytest.param(page, marks=pytest.mark.connect)
    if page in MODERN_PAGES:
        return pytest.param(page, marks=pytest.mark.one_profile(profile="modern", reason="a page about Keras 3"))
    return page


@pytest.mark.slow
@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES], ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples_run(page, spark, tmp_path, monkeypatch):
    blocks = [b for b in examples(page) if b[1] == "python" or (b[1] == "yaml" and b[3] == "config")]
    if not blocks:
        pytest.skip("no examples on this page")
    in_gradle_test = bool(os.environ.get("DEEPFLASH_PROFILE_PASS"))
    if page in CONNECT_PAGES and os.environ.get("DEEPFLASH_TEST_SPARK") != "connect" and in_gradle_test:
        pytest.skip("a page about Spark Connect: `gradle test` runs its examples in the connect pass")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__example__", "spark": spark}
    left_out = []
    for line, lang, code, mark in blocks:
        where = f"{page.relative_to(ROOT)}:{line}"
        if lang == "yaml":
            validate(yaml.safe_load(code), where)
            continue
        if mark is not None and mark.startswith("needs ") and (reason := missing(mark)):
            left_out.append(f"{where} ({reason})")
            continue
        exec(compile(code, where, "exec"), namespace)
    if left_out:
        pytest.skip(f"the other {len(blocks) - len(left_out)} blocks ran; left out: {'; '.join(left_out)}")
