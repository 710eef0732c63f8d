"""The Params of KerasEstimator and KerasModel, declared once in :data:`KERAS_PARAMS`.

Each :class:`~deepflash.ml.param_table.ParamSpec` there gives a Param's name, doc, converter and
default; the class attributes, the defaults, the keyword signatures of ``__init__``/``setParams``,
the accessors and the name lists below are all generated from it. Each converter turns a bad value
into an error that names the Param, says what was expected and what was found, e.g.
```epochs` == -1, must be >= 1``. Checks that need several Params together (loss against task,
monitor against validation) live in :meth:`KerasEstimator.validateParams
<deepflash.ml.estimator.KerasEstimator.validateParams>`.
"""
from __future__ import annotations

import json
from typing import Any

from pyspark.ml.param import TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasSeed,
    HasWeightCol,
)

from deepflash.backends import BACKENDS as BACKEND_REGISTRY
from deepflash.data.plan import DEFAULT_READER
from deepflash.data.readers import READERS as READER_REGISTRY
from deepflash.ml.converters import (
    to_choice,
    to_epoch_list,
    to_json_dict,
    to_lower,
    to_number,
    to_run_id,
    to_str,
    to_str_list,
)
from deepflash.ml.param_table import ParamSpec, declare_params, names, set_defaults
from deepflash.networks.augmentation import check_augmentation
from deepflash.networks.cascade_plan import TRAINING_MODES
from deepflash.networks.keras_backends import KERAS_BACKENDS
from deepflash.networks.layers import INITIALIZERS
from deepflash.networks.schedules import SCHEDULES

TASKS = ("classification", "regression")
# The names of the registered backends and readers (deepflash.backends.BACKENDS, deepflash.data.readers.READERS).
BACKENDS = tuple(sorted(BACKEND_REGISTRY))
READERS = tuple(sorted(READER_REGISTRY))
READ_MODES = ("auto", "memory", "stream")
OUTPUT_KINDS = ("multiclass", "binary", "regression")


def _layers(value: Any) -> Any:
    """A preset name, or a JSON-serializable list of layer dicts (deep-validated at fit time)."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, (list, tuple)) and all(isinstance(v, dict) for v in value):
        try:
            return json.loads(json.dumps(list(value)))
        except (TypeError, ValueError) as e:
            raise TypeError(f"`layers` must be JSON-serializable: {e}") from None
    raise TypeError(f"`layers` must be a list of dicts or a preset name, found {type(value).__name__}")


def _input_shape(value: Any) -> list[int]:
    """A list of 1 to 4 integers >= 1 (integral floats accepted), e.g. ``[28, 28, 1]``."""
    if isinstance(value, (list, tuple)) and 1 <= len(value) <= 4:
        dims = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in dims):
            return dims
    raise ValueError(f"`inputShape` == {value!r}, must be a list of 1 to 4 integers >= 1, e.g. [28, 28, 1]")


def _augmentation(value: Any) -> list[dict]:
    """Each step checked on its own (type, keys, ranges: every value ends up a JSON number or
    string); that the steps fit ``inputShape`` is checked by ``KerasEstimator.validateParams``."""
    return check_augmentation(value)


def _int(name: str, **bounds: Any):
    return to_number(name, integer=True, **bounds)


KERAS_PARAMS: tuple[ParamSpec, ...] = (
    # The columns (the pyspark shared Params, with converters whose errors name the Param).
    ParamSpec("featuresCol", "features column name", to_str("featuresCol"), "features", transform=True),
    ParamSpec("labelCol", "label column name", to_str("labelCol"), "label"),
    ParamSpec("predictionCol", "prediction column name", to_str("predictionCol"), "prediction", transform=True),
    ParamSpec("probabilityCol", "column of predicted class probabilities (a Vector; classification only)",
              to_str("probabilityCol"), "probability", transform=True),
    ParamSpec("weightCol", "numeric column of per-example weights >= 0, multiplied into the loss; unset or empty: "
              "every weight is 1", to_str("weightCol"), annotation="str"),
    ParamSpec("validationCol", "boolean column marking validation rows (overrides validationSplit)",
              TypeConverters.toString, annotation="str"),
    # Unset: pyspark's HasSeed default (a hash of the class name), folded into [0, 2**31) by the estimator.
    ParamSpec("seed", "random seed", TypeConverters.toInt, annotation="int"),
    # The network.
    ParamSpec("task", "classification or regression; binary vs multiclass is inferred from the labels",
              to_choice("task", TASKS), "classification"),
    ParamSpec("layers", "list of layer dicts (JSON-serializable) or a preset name: simple, deep, tuned_mlp, "
              "fashion_cnn (needs inputShape)", _layers, [{"type": "dense", "units": 64, "activation": "relu"}],
              annotation="list[dict] | str"),
    ParamSpec("inputShape", "shape the flat feature vector is reshaped to inside the model, e.g. [28, 28, 1] "
              "(product = feature length); None keeps it flat", _input_shape, None, annotation="list[int]"),
    ParamSpec("augmentation", "train-time image augmentation steps (needs a rank-3 inputShape), e.g. "
              "[{'type': 'shift', 'factor': 0.1}]: rotate, zoom, shift (factor), flip (mode), cutout (size); never "
              "applied by transform", _augmentation, [], annotation="list[dict]"),
    ParamSpec("kernelInitializer", "kernel initializer of every dense and conv layer without its own, and of the "
              "output layer: " + ", ".join(INITIALIZERS), to_choice("kernelInitializer", INITIALIZERS),
              "glorot_uniform"),
    # The optimizer and the loss.
    ParamSpec("optimizer", "sgd, adagrad, adadelta, rmsprop, adam, adamax or nadam", to_lower("optimizer"), "adam"),
    ParamSpec("learningRate", "learning rate, > 0", to_number("learningRate", low=0, low_open=True), 1e-3),
    ParamSpec("momentum", "momentum for sgd and rmsprop, in [0, 1)",
              to_number("momentum", low=0, high=1, high_open=True), 0.0),
    ParamSpec("nesterov", "Nesterov momentum for sgd", TypeConverters.toBoolean, False),
    ParamSpec("loss", "auto, categorical_crossentropy, binary_crossentropy, mse or mae", to_lower("loss"), "auto"),
    ParamSpec("metrics", "Keras metric names; empty means accuracy (classification) or mae (regression)",
              to_str_list("metrics"), [], annotation="list[str]"),
    # The training loop.
    ParamSpec("batchSize", "batch size per process, >= 1", _int("batchSize", low=1), 128),
    ParamSpec("maxClassId", "classification: the largest class id a label may hold (the network gets one output "
              "per class up to it), >= 1", _int("maxClassId", low=1), 10_000),
    ParamSpec("epochs", "number of epochs, >= 1", _int("epochs", low=1), 10),
    ParamSpec("validationSplit", "fraction held out for validation, in [0, 1)",
              to_number("validationSplit", low=0, high=1, high_open=True), 0.1),
    ParamSpec("earlyStoppingPatience", "epochs without improvement before stopping; 0 = off",
              _int("earlyStoppingPatience", low=0), 0),
    ParamSpec("earlyStoppingMonitor", "metric watched by early stopping and LR reduction", TypeConverters.toString,
              "val_loss"),
    ParamSpec("reduceLrPatience", "epochs without improvement before the LR is reduced; 0 = off",
              _int("reduceLrPatience", low=0), 0),
    ParamSpec("reduceLrFactor", "factor the LR is multiplied by on plateau, in (0, 1)",
              to_number("reduceLrFactor", low=0, high=1, low_open=True, high_open=True), 0.1),
    ParamSpec("lrSchedule", "learning rate per epoch, starting from learningRate: none, time, exponential, "
              "inverse_sqrt, step or cosine (see deepflash.networks.schedules); a plateau reduction multiplies it",
              to_choice("lrSchedule", SCHEDULES), "none"),
    ParamSpec("lrDecay", "k of the time (lr/(1+k*epoch)), exponential (lr*exp(-k*epoch)) and inverse_sqrt "
              "(lr*k/sqrt(epoch), epochs counted from 1) schedules, >= 0", to_number("lrDecay", low=0), 0.1),
    ParamSpec("lrStepEpochs", "the step schedule multiplies the rate by lrStepFactor every this many epochs, >= 1",
              _int("lrStepEpochs", low=1), 10),
    ParamSpec("lrStepFactor", "factor of the step schedule, in (0, 1)",
              to_number("lrStepFactor", low=0, high=1, low_open=True, high_open=True), 0.5),
    ParamSpec("lrWarmupEpochs", "epochs of linear warm-up before the cosine decay, >= 0 and < epochs",
              _int("lrWarmupEpochs", low=0), 0),
    ParamSpec("lrMinRate", "the rate the cosine schedule decays towards, >= 0 and < learningRate",
              to_number("lrMinRate", low=0), 0.0),
    ParamSpec("scaleLearningRate", "multiply the learning rate by the number of processes", TypeConverters.toBoolean,
              False),
    # Cascade learning.
    ParamSpec("trainingMode", "standard (every layer trains every epoch) or cascade (one layer with weights at a time, "
              "each under a fresh output layer; see deepflash.networks.cascade_plan)",
              to_choice("trainingMode", TRAINING_MODES), "standard"),
    ParamSpec("cascadeEpochs", "cascade: epochs per stage (one stage per layer with weights), summing to epochs; [] "
              "splits epochs by cascadeGrowth", to_epoch_list("cascadeEpochs"), [], annotation="list[int]"),
    ParamSpec("cascadeGrowth", "cascade without cascadeEpochs: stage k gets epochs in proportion to cascadeGrowth**k "
              "(each at least 1), >= 1", to_number("cascadeGrowth", low=1), 1.5),
    ParamSpec("cascadeFineTuneRate", "cascade: the layers of earlier stages train at learningRate times this, in "
              "[0, 1]; 0 freezes them", to_number("cascadeFineTuneRate", low=0, high=1), 0.0),
    # Where and how training runs.
    ParamSpec("numProc", "number of training processes (horovod or barrier backend), >= 1", _int("numProc", low=1), 1),
    ParamSpec("backend", "horovod (Horovod on Spark executors), barrier (TensorFlow's MultiWorkerMirroredStrategy on "
              "Spark executors, no Horovod) or local (in the driver)", to_choice("backend", BACKENDS), "horovod"),
    ParamSpec("kerasBackend", "the framework Keras 3 trains on: tensorflow, torch or jax; unset = the driver's "
              "keras.backend(). Keras 2 trains on tensorflow only. A fitted model's transform prefers it on the "
              "executors (a Python worker that already runs another backend scores with that one)",
              to_choice("kerasBackend", KERAS_BACKENDS), annotation="str", transform=True),
    ParamSpec("storePath", "store root: a local path or a filesystem URI; default under spark.local.dir",
              TypeConverters.toString, annotation="str"),
    ParamSpec("runId", "checkpoints go under this id; a fit with the same id resumes. Letters, digits, '.', '_' "
              "and '-' only (no path separator, not '..'), at most 128 characters", to_run_id, annotation="str"),
    ParamSpec("workerTimeout", "seconds a training process may go without a sign of life (its start-up, the "
              "collective's cluster formation, a step, a barrier sync, its exit) before the fit fails with a "
              "WorkerError naming the rank, > 0", to_number("workerTimeout", low=0, low_open=True), 120.0),
    ParamSpec("trainTimeout", "seconds the training may take from its start; past them the fit fails with "
              "TrainTimeoutError at the next batch (its checkpoints kept, so a runId run can resume); unset = no "
              "limit, > 0", to_number("trainTimeout", low=0, low_open=True), annotation="float"),
    ParamSpec("verbose", "0 = quiet, 1 = log every epoch", _int("verbose", low=0, high=2), 0),
    # How training processes read the data.
    ParamSpec("reader", f"how training processes read the materialized Parquet: {', '.join(READERS)} (default "
              f"{DEFAULT_READER})", to_choice("reader", READERS), DEFAULT_READER),
    ParamSpec("readMode", "memory (each process caches its shard), stream (row groups read as training goes, through a "
              "shuffle buffer; memory does not grow with the data) or auto (memory when the shard fits memoryBudgetMB)",
              to_choice("readMode", READ_MODES), "auto"),
    ParamSpec("shuffleBufferRows", "rows in the streaming shuffle buffer, >= 1", _int("shuffleBufferRows", low=1),
              10_000),
    ParamSpec("memoryBudgetMB", "per-process memory for an in-memory shard (readMode auto), > 0",
              to_number("memoryBudgetMB", low=0, low_open=True), 1024.0),
    # What a fitted KerasModel learned about its data: set by fit, getters only.
    ParamSpec("outputKind", "multiclass, binary or regression (inferred at fit time)",
              to_choice("outputKind", OUTPUT_KINDS), "multiclass", fitted=True),
    ParamSpec("numClasses", "number of classes (0 for regression)", _int("numClasses", low=0), 0, fitted=True),
    ParamSpec("inputDim", "length of the feature vector", _int("inputDim", low=1), fitted=True),
    ParamSpec("history", "per-epoch metrics of the fit", to_json_dict, {}, fitted=True),
)

ESTIMATOR_PARAMS = tuple(spec for spec in KERAS_PARAMS if not spec.fitted)
FITTED_PARAMS = tuple(spec for spec in KERAS_PARAMS if spec.fitted)
# Every Param of KerasEstimator (and so of a fitted KerasModel): what paramValues sends to training processes.
SHARED_PARAM_NAMES = names(ESTIMATOR_PARAMS)
# What a fitted KerasModel learned about its data: getters only, fit sets them.
MODEL_PARAM_NAMES = names(FITTED_PARAMS)
# The Params a fitted KerasModel's transform reads and writes: the only ones it has setters for.
TRANSFORM_PARAMS = tuple(spec for spec in KERAS_PARAMS if spec.transform)
TRANSFORM_PARAM_NAMES = names(TRANSFORM_PARAMS)


class KerasParams(HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol, HasSeed, HasWeightCol):
    """Params shared by KerasEstimator and KerasModel: those of :data:`ESTIMATOR_PARAMS`, with their defaults.

    The pyspark mixins stay bases (a KerasEstimator is a ``HasWeightCol``); their Params are replaced
    by the table's, whose converters name the Param in their errors.
    """

    def __init__(self) -> None:
        super().__init__()
        set_defaults(self, ESTIMATOR_PARAMS)

    def kerasBackendValue(self) -> str | None:
        """The ``kerasBackend`` Param, None when unset (the driver's backend)."""
        return self.getOrDefault(self.kerasBackend) if self.isDefined(self.kerasBackend) else None


class KerasModelParams(KerasParams):
    """What a fitted model learned about its data (:data:`FITTED_PARAMS`), kept in Params so
    DefaultParams persistence saves it."""

    def __init__(self) -> None:
        super().__init__()
        set_defaults(self, FITTED_PARAMS)


declare_params(KerasParams, ESTIMATOR_PARAMS)
declare_params(KerasModelParams, FITTED_PARAMS)
