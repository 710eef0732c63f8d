"""KerasEstimator: validate -> materialize (:meth:`~KerasEstimator.plan`) -> train on a backend
(:meth:`~KerasEstimator.fitPlanned`: ``backend.run`` of the training loop in each process) -> KerasModel."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import uuid
from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.util import MLReadable, MLWritable
from pyspark.sql import DataFrame

from deepflash.backends import Backend, get_backend
from deepflash.backends.executor_env import check_executors
from deepflash.data.materialize import materialize
from deepflash.data.plan import FitPlan
from deepflash.data.schema import prepare, summarize, window_shape
from deepflash.io import fs
from deepflash.io.keras_files import model_from_bytes, model_to_bytes
from deepflash.io.runs import RunLock, check_stream, stream_values
from deepflash.io.store import Store, check_reachable, default_store_path
from deepflash.ml.converters import add_accessors
from deepflash.ml.fit_info import FitData, FitInfo
from deepflash.ml.model import KerasModel
from deepflash.ml.param_table import keyword_params
from deepflash.ml.params import ESTIMATOR_PARAMS, SHARED_PARAM_NAMES, KerasParams
from deepflash.ml.persistence import MODEL_FILE, StageReader, StageWriter
from deepflash.networks import (
    build_model,
    check_against_shape,
    check_loss,
    check_optimizer,
    check_preset_input,
    resolve_layers,
    resolve_loss,
    validate_layers,
)
from deepflash.networks.cascade_plan import resolve_cascade
from deepflash.networks.keras_backends import check as check_keras_backend
from deepflash.networks.keras_compat import output_shape
from deepflash.networks.schedules import LrSchedule, check_schedule
from deepflash.requirements import PETASTORM, TENSORFLOW, require
from deepflash.worker import loop as remote

log = logging.getLogger("deepflash")


def _architecture(model) -> list:
    """Layer classes and weight shapes: what must match to resume. Keras's auto-generated layer
    names (``dense_7``) are left out, as they change with every model built in a process."""
    return [[layer.__class__.__name__, [list(w.shape) for w in layer.weights]] for layer in model.layers]


class KerasEstimator(Estimator, KerasParams, MLReadable, MLWritable):
    """Trains a Keras network on a DataFrame: in the driver, or data-parallel in ``numProc``
    processes on the Spark executors (``backend``).

    Every Param is a keyword of ``__init__`` and :meth:`setParams`, declared with its default and
    doc in :data:`~deepflash.ml.params.ESTIMATOR_PARAMS` (``explainParams()`` prints them). Some:

    Args:
        featuresCol: a Vector or numeric-array column.
        labelCol: class ids 0..k-1 (classification) or a number (regression).
        weightCol: a numeric column of per-example weights >= 0 (not all 0, no nulls or NaN); each
            example's loss is multiplied by its weight, in training and in ``val_loss`` (other
            metrics stay unweighted). Unset (default) or empty: every weight is 1.
        layers: hidden layers as a list of dicts, or a preset (``simple``, ``deep``, ``tuned_mlp``,
            ``fashion_cnn``); the output layer is added from ``task`` and the number of classes.
        inputShape: e.g. ``[28, 28, 1]``: the model's first layer reshapes the flat feature vector to
            it (its product must be the feature length), so the fitted model still scores flat vectors.
            Unset, the window shape ``[lookBack, k]`` that a LookBackWindow recorded in the features
            column's metadata is used, so an ``lstm`` takes its windows directly.
        augmentation: train-time image augmentation steps (``rotate``, ``zoom``, ``shift``, ``flip``,
            ``cutout``; see :mod:`deepflash.networks.augmentation`); needs a rank-3 ``inputShape``.
            ``transform`` never augments.
        kernelInitializer: glorot, he or lecun, ``_uniform`` or ``_normal``, for every dense and conv
            layer without its own ``kernel_initializer`` and for the output layer.
        backend: ``horovod`` (``numProc`` Horovod processes on the executors), ``barrier`` (``numProc``
            processes on the executors with TensorFlow's ``MultiWorkerMirroredStrategy``, no Horovod)
            or ``local`` (one process: the driver).
        lrSchedule: the learning rate of each epoch, starting from ``learningRate``: ``none``, ``time``,
            ``exponential``, ``inverse_sqrt``, ``step`` or ``cosine``, with ``lrDecay``, ``lrStepEpochs``,
            ``lrStepFactor``, ``lrWarmupEpochs`` and ``lrMinRate`` (formulas in :mod:`deepflash.networks.schedules`);
            a ReduceLROnPlateau reduction (``reduceLrPatience``) multiplies the scheduled rate.
        trainingMode: ``standard``, or ``cascade``: one layer with weights (with the dropout and
            batchnorm after it) trained at a time, each stage under a fresh output layer, for
            ``cascadeEpochs`` (or ``epochs`` split by ``cascadeGrowth``); earlier layers are frozen
            (``cascadeFineTuneRate`` 0) or train at ``learningRate × cascadeFineTuneRate``; within a
            stage the rate is multiplied by ``reduceLrFactor`` when ``earlyStoppingMonitor`` plateaus
            (``reduceLrPatience`` >= 1). The history's ``stage`` gives each epoch's stage (1-based).
        runId: checkpoints go to ``<storePath>/runs/<runId>``; fitting again with the same id resumes.

    Example:
        >>> est = KerasEstimator(layers="simple", optimizer="adamax", epochs=5, numProc=2)
        >>> model = est.fit(train_df)
        >>> model.transform(test_df).select("prediction", "probability")
    """

    @keyword_params(ESTIMATOR_PARAMS)
    def __init__(self, **params: Any) -> None:
        super().__init__()
        self._model_bytes: bytes | None = None
        self.setParams(**params)

    @keyword_params(ESTIMATOR_PARAMS, returns="KerasEstimator")
    def setParams(self, **params: Any) -> KerasEstimator:
        """Sets Params by keyword (None leaves one as it is); returns self. A keyword that names no
        Param raises TypeError."""
        return self._set(**{k: v for k, v in params.items() if v is not None})

    # --- a hand-built model -------------------------------------------------------------
    def setModel(self, model) -> KerasEstimator:
        """Trains this ``keras.Model`` instead of building one from ``layers``; returns self.

        Its input must take the feature vector and its output must fit the task: ``k`` softmax
        units for ``k`` classes, one unit for binary or regression. Pass ``None`` to go back to
        ``layers``.
        """
        if model is None:
            self._model_bytes = None
            return self
        import tensorflow as tf

        if not isinstance(model, tf.keras.Model):
            raise TypeError(f"setModel expects a keras.Model, found {type(model).__name__}")
        self._model_bytes = model_to_bytes(model)
        return self

    def getModel(self):
        """The model given to :meth:`setModel`, or None."""
        return None if self._model_bytes is None else model_from_bytes(self._model_bytes)

    def stateBytes(self) -> bytes | None:
        """The model given to :meth:`setModel`, in Keras's format
        (:class:`~deepflash.ml.persistence.BinaryState`), or None."""
        return self._model_bytes

    def setStateBytes(self, data: bytes) -> None:
        """Takes a model in Keras's format, checked now by deserializing it in Keras's safe mode."""
        model_from_bytes(data)
        self._model_bytes = data

    @classmethod
    def read(cls) -> StageReader:
        return StageReader(cls, MODEL_FILE)

    def write(self) -> StageWriter:
        return StageWriter(self, MODEL_FILE)

    # --- fit ----------------------------------------------------------------------------
    def validateParams(self) -> None:
        """Checks that need several Params together; raises ValueError naming them, or
        MissingDependencyError naming a package this Python lacks. No Spark job."""
        require(TENSORFLOW)
        framework = check_keras_backend(self.kerasBackendValue(), self.getBackend())
        if framework != "tensorflow" and self.getAugmentation():
            raise ValueError(f"`augmentation` == {self.getAugmentation()!r} trains on TensorFlow only (its layers run "
                             f"TensorFlow ops), but `kerasBackend` == {framework!r}: leave augmentation empty, or "
                             "use kerasBackend='tensorflow'")
        if self.getReader() == "petastorm":
            require(PETASTORM)
        check_optimizer(self.getOptimizer())
        check_loss(self.getLoss())
        input_shape, augmentation = self.getInputShape(), self.getAugmentation()
        if self._model_bytes is None:
            check_preset_input(self.getLayers(), input_shape)
            validate_layers(resolve_layers(self.getLayers()), self.getKernelInitializer())
        elif input_shape is not None or augmentation:
            name, value = ("inputShape", input_shape) if input_shape is not None else ("augmentation", augmentation)
            raise ValueError(f"`{name}` == {value!r} shapes networks built from `layers`; the model given to "
                             "setModel brings its own input layers, so leave it unset or add them to that model")
        check_against_shape(augmentation, input_shape)
        task, loss = self.getTask(), check_loss(self.getLoss())
        if task == "regression" and loss not in ("auto", "mse", "mae"):
            raise ValueError(f"`loss` == {self.getLoss()!r} does not fit task 'regression'; use auto, mse or mae")
        has_validation = self.isDefined(self.validationCol) and self.getOrDefault(self.validationCol) \
            or self.getValidationSplit() > 0
        watching = self.getEarlyStoppingPatience() > 0 or self.getReduceLrPatience() > 0
        monitor = self.getEarlyStoppingMonitor()
        if watching and monitor.startswith("val_") and not has_validation:
            raise ValueError(f"`earlyStoppingMonitor` == {monitor!r} needs validation data, found validationSplit "
                             "== 0 and no validationCol; set one, or monitor a training metric such as 'loss'")
        check_schedule(LrSchedule.from_values(self.paramValues()), self.getLearningRate())
        if self.getTrainingMode() == "cascade" and self._model_bytes is not None:
            raise ValueError("`trainingMode` == 'cascade' builds one network per stage from `layers`; the model "
                             "given to setModel cannot be split into stages: use layers, or trainingMode='standard'")
        resolve_cascade(self.paramValues())
        if self.getBackend() == "local" and self.getNumProc() != 1:
            raise ValueError(f"`numProc` == {self.getNumProc()}, must be 1 with backend='local'; "
                             "use backend='horovod' for more processes")

    def _seed(self) -> int:
        """The seed, folded into [0, 2**31): Spark's default seed is a hash that can be negative."""
        return int(self.getOrDefault(self.seed)) % (2 ** 31)

    def historyMetrics(self) -> list[str]:
        """The names a fit's history records: ``loss``, each metric, and their ``val_`` copies when
        there is validation data. A search ranks trials by one of them."""
        names = ["loss"] + self._metrics()
        has_validation = self.isDefined(self.validationCol) and self.getOrDefault(self.validationCol) \
            or self.getValidationSplit() > 0
        return names + ([f"val_{n}" for n in names] if has_validation else [])

    def _metrics(self) -> list[str]:
        metrics = self.getMetrics()
        if metrics:
            return list(metrics)
        return ["accuracy"] if self.getTask() == "classification" else ["mae"]

    def _initial_model(self, input_dim: int, output_kind: str, num_classes: int,
                       input_shape: tuple[int, ...] | None = None):
        """The untrained model: the one from setModel, or one built from ``layers`` (reshaping the
        feature vector to ``input_shape``, see :meth:`_input_shape`)."""
        if self._model_bytes is None:
            return build_model(self.getLayers(), input_dim, output_kind, num_classes, seed=self._seed(),
                               input_shape=list(input_shape) if input_shape else None,
                               augmentation=self.getAugmentation(), kernel_initializer=self.getKernelInitializer())
        model = model_from_bytes(self._model_bytes)
        in_dim = model.input_shape[-1]
        out_units = output_shape(model)[-1]
        want = num_classes if output_kind == "multiclass" else 1
        if in_dim != input_dim:
            raise ValueError(f"the model given to setModel takes {in_dim} features, but `featuresCol` "
                             f"{self.getFeaturesCol()!r} holds vectors of length {input_dim}")
        if out_units != want:
            raise ValueError(f"the model given to setModel has {out_units} output units; a "
                             f"{output_kind} task on this data needs {want}")
        return model

    def _input_shape(self, dataset: DataFrame) -> tuple[int, ...] | None:
        """``inputShape`` if set; else, for a network built from ``layers``, the window shape that
        :class:`~deepflash.ml.timeseries.LookBackWindow` recorded in the features column's metadata."""
        if self.getInputShape() is not None:
            return tuple(self.getInputShape())
        if self._model_bytes is not None:
            return None
        shape = window_shape(dataset, self.getFeaturesCol())
        if shape is not None:
            log.info("`featuresCol` %r holds windows of shape %s (its metadata): the network takes them so",
                     self.getFeaturesCol(), shape)
            return tuple(shape)
        return None

    def paramValues(self) -> dict:
        """Every shared Param's value by name (the seed folded into [0, 2**31)): the plain,
        picklable form that training processes and search trials receive."""
        values = {name: self.getOrDefault(getattr(self, name)) for name in SHARED_PARAM_NAMES
                  if self.isDefined(getattr(self, name))}
        values["seed"] = self._seed()
        return values

    def plan(self, dataset: DataFrame, numProc: int | None = None) -> FitPlan:
        """Validates the Params and the data, then materializes the data once in the store.

        What :meth:`fitPlanned` (and search trials, the study) train from. Raises before any job
        or file write when the Params or the columns are wrong, and before any write when the
        values are (one validation pass) or when the executors, where training will run, cannot
        run deepflash (:class:`~deepflash.backends.executor_env.ExecutorEnvironmentError`, checked
        once per Spark application).

        Args:
            dataset: the training DataFrame.
            numProc: training processes the data is split for; the ``numProc`` Param by default.

        Example:
            >>> plan = KerasEstimator(epochs=5).plan(train_df)
            >>> plan.train_rows, plan.num_classes
        """
        self.validateParams()
        num_proc = self.getNumProc() if numProc is None else int(numProc)
        backend = get_backend(self.getBackend(), num_proc, self.getWorkerTimeout(), self.kerasBackendValue())
        if numProc is None:
            backend.check(dataset.sparkSession)
        spark = dataset.sparkSession
        user_store = self.getOrDefault(self.storePath) if self.isDefined(self.storePath) else None
        store = Store(user_store or default_store_path(spark), spark)
        seed = self._seed()
        validation_col = self.getOrDefault(self.validationCol) if self.isDefined(self.validationCol) else None
        # Unset or "" (pyspark.ml's convention): unweighted.
        weight_col = (self.getOrDefault(self.weightCol) if self.isDefined(self.weightCol) else None) or None
        prepared = prepare(dataset, self.getFeaturesCol(), self.getLabelCol(), validation_col,
                           self.getValidationSplit(), seed, weight_col=weight_col)
        # Column errors above need no job; the executor check, the store probe and the summary
        # below are the first. Training runs on executors with a distributed backend, and where a
        # caller splits the data itself (search trials and study runs are Spark tasks).
        if numProc is not None or backend.distributed:
            check_executors(spark, at_least=num_proc)
        check_reachable(store, spark, is_default=not user_store)
        summary = summarize(prepared, task=self.getTask(), features_col=self.getFeaturesCol(),
                            label_col=self.getLabelCol(), weight_col=weight_col, max_class_id=self.getMaxClassId(),
                            key_extra={"task": self.getTask(), "split": self.getValidationSplit(),
                                       "seed": seed, "validationCol": validation_col},
                            source=dataset)
        resolve_loss(self.getLoss(), summary.output_kind)
        train_rows = summary.rows - summary.val_rows
        if train_rows < num_proc:
            raise ValueError(f"`numProc` == {num_proc}, but there are only {train_rows} training "
                             "rows; every process needs at least one")
        # Built once here so that a layer list or a setModel model that cannot fit the data fails
        # before anything is written.
        input_shape = self._input_shape(dataset)
        self._initial_model(summary.input_dim, summary.output_kind, summary.num_classes, input_shape)
        from deepflash.data.verify import SourceColumns

        data = materialize(prepared, summary, store, num_proc,
                           SourceColumns(self.getFeaturesCol(), self.getLabelCol(), weight_col))
        return FitPlan(train_url=data.train_url, val_url=data.val_url, train_rows=data.train_rows,
                       val_rows=data.val_rows, output_kind=summary.output_kind, num_classes=summary.num_classes,
                       input_dim=summary.input_dim, data_fingerprint=summary.fingerprint, store_url=store.url(),
                       reused=data.reused, write_seconds=data.seconds, bytes=data.bytes, reader=self.getReader(),
                       weighted=summary.weighted, input_shape=input_shape)

    def _fit(self, dataset: DataFrame) -> KerasModel:
        started = time.time()
        plan = self.plan(dataset)
        planned = time.time()
        fitted = self.fitPlanned(plan, spark=dataset.sparkSession)
        fitted.fitInfo = fitted.fitInfo.replace(seconds=time.time() - started, plan_seconds=planned - started)
        return fitted

    def fitPlanned(self, plan: FitPlan, backend: Backend | None = None, spark=None) -> KerasModel:
        """Trains on data already materialized by :meth:`plan` and returns the fitted model.

        Args:
            plan: from :meth:`plan` (on the same data and Params).
            backend: a :class:`~deepflash.backends.Backend`; the one the Params name by default.
            spark: the session whose cluster runs the training processes (the planned
                DataFrame's ``sparkSession``); needed by the distributed backends.
        """
        started = time.time()
        backend = backend or get_backend(self.getBackend(), self.getNumProc(), self.getWorkerTimeout(),
                                         self.kerasBackendValue())
        model = self._initial_model(plan.input_dim, plan.output_kind, plan.num_classes, plan.input_shape)
        store = Store(plan.store_url)
        values = self.paramValues()
        user_run_id = values.get("runId")
        run_id = user_run_id or uuid.uuid4().hex
        # Checkpoints where they can be used: a run resumes through the runId its user gave; a
        # distributed fit without one keeps them under an internal run id, so that an attempt of
        # the training stage that Spark retries (a lost task or executor) resumes from the last
        # epoch, and removes that run when it ends.
        internal = not user_run_id and backend.distributed
        run_dir = store.run_dir(run_id)
        checkpoint_path = fs.join(run_dir, remote.CHECKPOINT_FILE) if user_run_id or internal else None
        # Resuming is only safe onto the same architecture, data and training setup.
        identity = {"model": _architecture(model), "data": plan.data_fingerprint, "loss": values["loss"],
                    "optimizer": values["optimizer"], "batch": values["batchSize"]}
        cascade = resolve_cascade(values)
        if cascade is not None:
            # A cascade checkpoint holds one stage's network: only the same stages can continue it.
            identity["cascade"] = cascade.as_dict()
        fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        settings = remote.make_settings(values, plan, model_to_bytes(model), run_fingerprint=fingerprint,
                                        run_id=run_id, checkpoint_path=checkpoint_path,
                                        communicator=backend.communicator())
        log.info("fitting %s: %d train / %d val rows, %d features, %s, %d process(es) on backend %s (Keras on %s), "
                 "run %s", model.name, plan.train_rows, plan.val_rows, plan.input_dim, plan.output_kind,
                 backend.num_processes(), backend.name, backend.keras_backend, run_id)
        with contextlib.ExitStack() as run:
            if checkpoint_path is not None:
                run.enter_context(RunLock(run_dir, run_id))
                if internal:
                    run.callback(_remove_run, run_dir)
                else:
                    check_stream(run_dir, run_id, stream_values({**values, "numProc": backend.num_processes()}))
            results = sorted(backend.run(spark, remote.train, (settings,)), key=lambda r: r.rank)
        chief = results[0]
        model.set_weights(chief.weights)
        read_seconds, fit_seconds = max(r.read_seconds for r in results), max(r.fit_seconds for r in results)
        log.info("fit done in %.1fs (read %.1fs, train %.1fs)", time.time() - started, read_seconds, fit_seconds)

        fitted = self._copyValues(KerasModel())
        for name, value in (("outputKind", plan.output_kind), ("numClasses", plan.num_classes),
                            ("inputDim", plan.input_dim), ("history", chief.history)):
            fitted.set(fitted.getParam(name), value)
        fitted.setKerasModel(model)
        fitted.fitInfo = FitInfo(
            run_id=run_id, data=FitData(train_url=plan.train_url, val_url=plan.val_url, reused=plan.reused,
                                        seconds=plan.write_seconds, bytes=plan.bytes),
            read_seconds=read_seconds, fit_seconds=fit_seconds, initial_epoch=chief.initial_epoch,
            seconds=time.time() - started, rows_read_per_rank=[r.train_rows_read for r in results],
            read_mode=chief.read_mode, keras_backend=chief.keras_backend,
            devices_per_rank=[r.devices for r in results if r.devices is not None],
            epoch_seconds=list(chief.epoch_seconds), allreduce=chief.allreduce)
        return fitted


def _remove_run(run_dir: str) -> None:
    """Removes an internal run's directory (its checkpoint); a failure is only logged."""
    try:
        fs.remove(run_dir)
    except OSError as e:
        log.warning("could not remove the internal run directory %s: %s", run_dir, e)


add_accessors(KerasEstimator, SHARED_PARAM_NAMES)
