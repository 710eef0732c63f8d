"""Saving and loading searches and their models (``search.write().save(path)``, ``Search.load(path)``).

A search (an Estimator) saves its Params and its estimator; a search model saves its Params, the
best model, ``bestParams.json``, ``trials.json`` and, when present, ``refinedSpace.json`` and
``timing.json``.
"""
from __future__ import annotations

from io import StringIO

import pandas as pd
from pyspark.ml import Estimator
from pyspark.ml.util import DefaultParamsWriter, MLReader, MLWriter

from deepflash.io import fs


class SearchWriter(MLWriter):
    """Params metadata, plus the estimator (search) or best model, bestParams and trials (model)."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        from deepflash.io.store import Store

        path = fs.qualify(path, self.sparkSession)  # one directory for Spark's metadata and our files
        try:
            DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession)
        except TypeError as e:
            raise TypeError(f"this search cannot be saved: its `space` holds raw hyperopt expressions ({e}); "
                            "use the dict form to save it") from None
        store = Store(path, self.sparkSession)
        inst = self.instance
        if isinstance(inst, Estimator):
            if inst.getEstimator() is not None:
                inst.getEstimator().write().save(store.join("estimator"))
            return
        if inst.bestModel is not None:
            inst.bestModel.write().save(store.join("bestModel"))
        store.write_json(store.join("bestParams.json"), inst.bestParams)
        store.write_bytes(store.join("trials.json"), inst.trials.to_json(orient="records").encode())
        if inst.refinedSpace is not None:
            store.write_json(store.join("refinedSpace.json"), inst.refinedSpace)
        if inst.timing:
            store.write_json(store.join("timing.json"), inst.timing)


class SearchReader(MLReader):
    """Loads what :class:`SearchWriter` saved as an instance of ``cls``."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        from deepflash.io.store import Store
        from deepflash.ml.estimator import KerasEstimator
        from deepflash.ml.model import KerasModel
        from deepflash.ml.persistence import load_params_instance

        path = fs.qualify(path, self.sparkSession)
        instance = load_params_instance(self.cls, path, self.sparkSession)
        store = Store(path, self.sparkSession)
        if isinstance(instance, Estimator):
            if store.exists(store.join("estimator")):
                instance.setEstimator(KerasEstimator.load(store.join("estimator")))
            return instance
        best = KerasModel.load(store.join("bestModel")) if store.exists(store.join("bestModel")) else None
        trials = pd.read_json(StringIO(store.read_bytes(store.join("trials.json")).decode()), orient="records")
        instance.setResults(best, store.read_json(store.join("bestParams.json")), trials)
        if store.exists(store.join("refinedSpace.json")):
            instance.refinedSpace = store.read_json(store.join("refinedSpace.json"))
        if store.exists(store.join("timing.json")):
            instance.timing = store.read_json(store.join("timing.json"))
        return instance
