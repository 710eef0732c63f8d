"""Module paths from before the package was organised by concern, kept importable.

Saved pipelines name their stages' classes by module path (Spark's DefaultParams metadata), and
pickles name their classes the same way, so ``deepflash.model.KerasModel`` written by an earlier
version must still load. :func:`install` adds an import hook that answers each old path with the
module that now holds its code (or, where some of its names went elsewhere, a module that finds
each name where it went); nothing inside deepflash imports an old path.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

# old module path -> where its code lives now
MOVED = {
    # old module -> new module
    "deepflash.estimator": "deepflash.ml.estimator",
    "deepflash.model": "deepflash.ml.model",
    "deepflash.params": "deepflash.ml.params",
    "deepflash.persistence": "deepflash.ml.persistence",
    "deepflash.timeseries": "deepflash.ml.timeseries",
    "deepflash.plan": "deepflash.data.plan",
    "deepflash.datasets": "deepflash.data.datasets",
    "deepflash.data.arrow_reader": "deepflash.data.readers.arrow",
    "deepflash.cascade": "deepflash.networks.cascade_plan",
    "deepflash.schedules": "deepflash.networks.schedules",
    "deepflash.keras_compat": "deepflash.networks.keras_compat",
    "deepflash.remote": "deepflash.worker.loop",
    "deepflash.training": "deepflash.worker.callbacks",
    "deepflash.devices": "deepflash.worker.devices",
    "deepflash.fs": "deepflash.io.fs",
    "deepflash.store": "deepflash.io.store",
    "deepflash.keras_io": "deepflash.io.keras_files",
    "deepflash.evaluation": "deepflash.reporting.metrics",
    "deepflash.tracking": "deepflash.reporting.tracking",
    "deepflash.plots": "deepflash.reporting.plots",
    "deepflash.report": "deepflash.reporting.report",
    "deepflash.config": "deepflash.jobs.config",
    "deepflash.scoring": "deepflash.serving.scoring",
    "deepflash.study": "deepflash.tuning.optimizer_study",
    "deepflash.tuning.search": "deepflash.tuning.hyperopt.search",
    "deepflash.tuning.hyperopt_dispatch": "deepflash.tuning.hyperopt.dispatch",
    "deepflash.tuning.optuna_search": "deepflash.tuning.optuna.search",
    "deepflash.tuning.optuna_engine": "deepflash.tuning.optuna.engine",
    "deepflash.evolution.evaluation": "deepflash.evolution.evaluators",
}

# old module path -> {name: the module that holds it now}, for names that left the module named in MOVED
MOVED_NAMES: dict[str, dict[str, str]] = {
    "deepflash.fs": dict.fromkeys(["SUCCESS_MARKER", "Staging", "atomic_dir", "check_writable_target", "commit_dir",
                                   "is_complete"], "deepflash.io.atomic"),
    "deepflash.plan": {"FitInfo": "deepflash.ml.fit_info"},
    "deepflash.store": {"is_local_master": "deepflash.spark.session"},
}


def _proxy(old: str):
    """A module at the old path that answers the names of its new module, and those in MOVED_NAMES."""
    new = importlib.import_module(MOVED[old])
    elsewhere = MOVED_NAMES[old]
    module = types.ModuleType(old, new.__doc__)

    def __getattr__(name: str):
        if name in elsewhere:
            return getattr(importlib.import_module(elsewhere[name]), name)
        return getattr(new, name)

    module.__getattr__ = __getattr__
    return module


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path in :data:`MOVED` and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        if spec.name in MOVED_NAMES:
            return _proxy(spec.name)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        """The new module ran when it was imported; nothing more to run."""


def install() -> None:
    """Adds the finder to ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
