"""Every public name importable before the package was organised by concern imports from the same
place now: the names in each ``__all__`` and the documented modules' names (``public_names.txt``),
some through :mod:`deepflash.legacy_paths`. Saved pipelines name their classes by the old paths."""
from __future__ import annotations

import importlib
import pathlib
import pickle

import pytest

NAMES = [line.split(":") for line in (pathlib.Path(__file__).with_name("public_names.txt")).read_text().splitlines()
         if line and not line.startswith("#")]


@pytest.mark.parametrize("module,name", NAMES, ids=[f"{m}:{n}" for m, n in NAMES])
def test_public_name_imports_from_its_old_place(module, name):
    assert hasattr(importlib.import_module(module), name), f"{module} has no {name}"


def test_old_module_path_is_the_new_module():
    from deepflash.legacy_paths import MOVED, MOVED_NAMES

    for old, new in MOVED.items():
        if old not in MOVED_NAMES:
            assert importlib.import_module(old) is importlib.import_module(new), old


def test_a_class_pickled_under_its_old_path_loads():
    from deepflash.data.plan import FitPlan

    # What an earlier version wrote: the class named by its old module, deepflash.plan.
    plan = FitPlan("t", "v", 1, 0, "binary", 2, 3, "f", "s")
    data = pickle.dumps(plan, protocol=0).replace(b"deepflash.data.plan", b"deepflash.plan")
    assert b"deepflash.plan" in data
    assert pickle.loads(data) == plan
