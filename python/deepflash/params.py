"""Typed Params shared by KerasEstimator and KerasModel (pyspark.ml style).

Each converter turns a bad value into an error that names the param, says what was expected
and what was found, e.g. ```epochs` == -1, must be >= 1``. Checks that need several params
together (loss against task, monitor against validation) live in ``KerasEstimator._validate``.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasSeed,
    HasWeightCol,
)

from deepflash.cascade import TRAINING_MODES
from deepflash.networks.augmentation import check_augmentation
from deepflash.networks.layers import INITIALIZERS
from deepflash.schedules import SCHEDULES

TASKS = ("classification", "regression")
BACKENDS = ("horovod", "barrier", "local")
READ_MODES = ("auto", "memory", "stream")
READERS = ("arrow", "petastorm")


def _fmt(value: Any) -> str:
    return repr(value)


def _number(name: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> Callable[[Any], Any]:
    """A converter: the value must be a number within the given bounds."""

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise TypeError(f"`{name}` == {value!r}, must be a number, found bool")
        if integer:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise TypeError(f"`{name}` == {_fmt(value)}, must be an integer, found {type(value).__name__}")
        else:
            if not isinstance(value, (int, float)):
                raise TypeError(f"`{name}` == {_fmt(value)}, must be a number, found {type(value).__name__}")
            value = float(value)
            if math.isnan(value):
                raise ValueError(f"`{name}` == nan, must be a number")
        if low is not None and (value <= low if low_open else value < low):
            raise ValueError(f"`{name}` == {_fmt(value)}, must be {'>' if low_open else '>='} {low}")
        if high is not None and (value >= high if high_open else value > high):
            raise ValueError(f"`{name}` == {_fmt(value)}, must be {'<' if high_open else '<='} {high}")
        return value

    return convert


def _one_of(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"`{name}` == {_fmt(value)}, must be a string, found {type(value).__name__}")
        if value.lower() not in choices:
            raise ValueError(f"`{name}` == {value!r}, must be one of: {', '.join(choices)}")
        return value.lower()

    return convert


def _lower_string(name: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"`{name}` == {_fmt(value)}, must be a string, found {type(value).__name__}")
        return value.lower()

    return convert


def _string(name: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"`{name}` == {_fmt(value)}, must be a string, found {type(value).__name__}")
        return value

    return convert


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


def _string_list(name: str) -> Callable[[Any], list[str]]:
    def convert(value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"`{name}` == {_fmt(value)}, must be a list of strings")
        return list(value)

    return convert


def _input_shape(value: Any) -> list[int]:
    """A list of 1 to 4 integers >= 1 (integral floats accepted), e.g. ``[28, 28, 1]``."""
    if isinstance(value, (list, tuple)) and 1 <= len(value) <= 4:
        dims = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in dims):
            return dims
    raise ValueError(f"`inputShape` == {_fmt(value)}, must be a list of 1 to 4 integers >= 1, e.g. [28, 28, 1]")


def _epoch_list(name: str) -> Callable[[Any], list[int]]:
    """A list of integers >= 1 (integral floats accepted); empty means unset."""

    def convert(value: Any) -> list[int]:
        if isinstance(value, (list, tuple)):
            items = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
            if all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items):
                return items
        raise ValueError(f"`{name}` == {_fmt(value)}, must be a list of integers >= 1 (epochs per stage), or []")

    return convert


def _augmentation(value: Any) -> list[dict]:
    """Each step checked on its own (type, keys, ranges: every value ends up a JSON number or
    string); that the steps fit ``inputShape`` is checked by ``KerasEstimator.validateParams``."""
    return check_augmentation(value)


def _json_dict(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"must be a dict, found {type(value).__name__}")
    return json.loads(json.dumps(value))


def _param(name: str, doc: str, converter: Callable[[Any], Any]) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class _KerasParams(HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol, HasSeed, HasWeightCol):
    """Params shared by KerasEstimator and KerasModel."""

    # HasWeightCol's Param converts with TypeConverters.toString, whose error does not name the
    # Param; the same Param with a converter that does. Unset or "" means every weight is 1.
    weightCol = _param("weightCol", "numeric column of per-example weights >= 0, multiplied into the loss; "
                       "unset or empty: every weight is 1", _string("weightCol"))

    task = _param("task", "classification or regression; binary vs multiclass is inferred from the labels",
                  _one_of("task", TASKS))
    layers = _param("layers", "list of layer dicts (JSON-serializable) or a preset name: simple, deep, tuned_mlp, "
                    "fashion_cnn (needs inputShape)",
                    _layers)
    inputShape = _param("inputShape", "shape the flat feature vector is reshaped to inside the model, e.g. "
                         "[28, 28, 1] (product = feature length); None keeps it flat", _input_shape)
    augmentation = _param("augmentation", "train-time image augmentation steps (needs a rank-3 inputShape), e.g. "
                          "[{'type': 'shift', 'factor': 0.1}]: rotate, zoom, shift (factor), flip (mode), cutout "
                          "(size); never applied by transform", _augmentation)
    kernelInitializer = _param("kernelInitializer", "kernel initializer of every dense and conv layer without its "
                               "own, and of the output layer: " + ", ".join(INITIALIZERS),
                               _one_of("kernelInitializer", INITIALIZERS))
    optimizer = _param("optimizer", "sgd, adagrad, adadelta, rmsprop, adam, adamax or nadam",
                       _lower_string("optimizer"))
    learningRate = _param("learningRate", "learning rate, > 0", _number("learningRate", low=0, low_open=True))
    momentum = _param("momentum", "momentum for sgd and rmsprop, in [0, 1)",
                      _number("momentum", low=0, high=1, high_open=True))
    nesterov = _param("nesterov", "Nesterov momentum for sgd", TypeConverters.toBoolean)
    loss = _param("loss", "auto, categorical_crossentropy, binary_crossentropy, mse or mae", _lower_string("loss"))
    metrics = _param("metrics", "Keras metric names; empty means accuracy (classification) or mae (regression)",
                     _string_list("metrics"))
    batchSize = _param("batchSize", "batch size per process, >= 1", _number("batchSize", integer=True, low=1))
    epochs = _param("epochs", "number of epochs, >= 1", _number("epochs", integer=True, low=1))
    validationSplit = _param("validationSplit", "fraction held out for validation, in [0, 1)",
                             _number("validationSplit", low=0, high=1, high_open=True))
    validationCol = _param("validationCol", "boolean column marking validation rows (overrides validationSplit)",
                           TypeConverters.toString)
    earlyStoppingPatience = _param("earlyStoppingPatience", "epochs without improvement before stopping; 0 = off",
                                   _number("earlyStoppingPatience", integer=True, low=0))
    earlyStoppingMonitor = _param("earlyStoppingMonitor", "metric watched by early stopping and LR reduction",
                                  TypeConverters.toString)
    reduceLrPatience = _param("reduceLrPatience", "epochs without improvement before the LR is reduced; 0 = off",
                              _number("reduceLrPatience", integer=True, low=0))
    reduceLrFactor = _param("reduceLrFactor", "factor the LR is multiplied by on plateau, in (0, 1)",
                            _number("reduceLrFactor", low=0, high=1, low_open=True, high_open=True))
    lrSchedule = _param("lrSchedule", "learning rate per epoch, starting from learningRate: none, time, exponential, "
                        "inverse_sqrt, step or cosine (see deepflash.schedules); a plateau reduction multiplies it",
                        _one_of("lrSchedule", SCHEDULES))
    lrDecay = _param("lrDecay", "k of the time (lr/(1+k*epoch)), exponential (lr*exp(-k*epoch)) and inverse_sqrt "
                     "(lr*k/sqrt(epoch), epochs counted from 1) schedules, >= 0", _number("lrDecay", low=0))
    lrStepEpochs = _param("lrStepEpochs", "the step schedule multiplies the rate by lrStepFactor every this many "
                          "epochs, >= 1", _number("lrStepEpochs", integer=True, low=1))
    lrStepFactor = _param("lrStepFactor", "factor of the step schedule, in (0, 1)",
                          _number("lrStepFactor", low=0, high=1, low_open=True, high_open=True))
    lrWarmupEpochs = _param("lrWarmupEpochs", "epochs of linear warm-up before the cosine decay, >= 0 and < epochs",
                            _number("lrWarmupEpochs", integer=True, low=0))
    lrMinRate = _param("lrMinRate", "the rate the cosine schedule decays towards, >= 0 and < learningRate",
                       _number("lrMinRate", low=0))
    trainingMode = _param("trainingMode", "standard (every layer trains every epoch) or cascade (one layer with "
                          "weights at a time, each under a fresh output layer; see deepflash.cascade)",
                          _one_of("trainingMode", TRAINING_MODES))
    cascadeEpochs = _param("cascadeEpochs", "cascade: epochs per stage (one stage per layer with weights), summing "
                           "to epochs; [] splits epochs by cascadeGrowth", _epoch_list("cascadeEpochs"))
    cascadeGrowth = _param("cascadeGrowth", "cascade without cascadeEpochs: stage k gets epochs in proportion to "
                           "cascadeGrowth**k (each at least 1), >= 1", _number("cascadeGrowth", low=1))
    cascadeFineTuneRate = _param("cascadeFineTuneRate", "cascade: the layers of earlier stages train at "
                                 "learningRate times this, in [0, 1]; 0 freezes them",
                                 _number("cascadeFineTuneRate", low=0, high=1))
    scaleLearningRate = _param("scaleLearningRate", "multiply the learning rate by the number of processes",
                               TypeConverters.toBoolean)
    numProc = _param("numProc", "number of training processes (horovod or barrier backend), >= 1",
                     _number("numProc", integer=True, low=1))
    backend = _param("backend", "horovod (Horovod on Spark executors), barrier (TensorFlow's "
                     "MultiWorkerMirroredStrategy on Spark executors, no Horovod) or local (in the driver)", _one_of("backend", BACKENDS))
    storePath = _param("storePath", "store root: a local path or a filesystem URI; default under spark.local.dir",
                       TypeConverters.toString)
    runId = _param("runId", "checkpoints go under this id; a fit with the same id resumes", TypeConverters.toString)
    verbose = _param("verbose", "0 = quiet, 1 = log every epoch", _number("verbose", integer=True, low=0, high=2))
    reader = _param("reader", "how training processes read the materialized Parquet: arrow (pyarrow, the "
                    "default) or petastorm", _one_of("reader", READERS))
    readMode = _param("readMode", "memory (each process caches its shard), stream (row groups read as training "
                      "goes, through a shuffle buffer; memory does not grow with the data) or auto (memory when "
                      "the shard fits memoryBudgetMB)", _one_of("readMode", READ_MODES))
    shuffleBufferRows = _param("shuffleBufferRows", "rows in the streaming shuffle buffer, >= 1",
                               _number("shuffleBufferRows", integer=True, low=1))
    memoryBudgetMB = _param("memoryBudgetMB", "per-process memory for an in-memory shard (readMode auto), > 0",
                            _number("memoryBudgetMB", low=0, low_open=True))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            featuresCol="features", labelCol="label", predictionCol="prediction", probabilityCol="probability",
            task="classification", layers=[{"type": "dense", "units": 64, "activation": "relu"}],
            inputShape=None, augmentation=[], kernelInitializer="glorot_uniform", optimizer="adam", learningRate=1e-3, momentum=0.0, nesterov=False, loss="auto", metrics=[],
            batchSize=128, epochs=10, validationSplit=0.1, earlyStoppingPatience=0,
            earlyStoppingMonitor="val_loss", reduceLrPatience=0, reduceLrFactor=0.1, lrSchedule="none", lrDecay=0.1,
            lrStepEpochs=10, lrStepFactor=0.5, lrWarmupEpochs=0, lrMinRate=0.0, scaleLearningRate=False,
            trainingMode="standard", cascadeEpochs=[], cascadeGrowth=1.5, cascadeFineTuneRate=0.0,
            numProc=1, backend="horovod", verbose=0, reader="arrow", readMode="auto", shuffleBufferRows=10_000,
            memoryBudgetMB=1024.0,
        )


class _KerasModelParams(_KerasParams):
    """What a fitted model learned about its data, kept in Params so DefaultParams persistence works."""

    outputKind = _param("outputKind", "multiclass, binary or regression (inferred at fit time)",
                        _one_of("outputKind", ("multiclass", "binary", "regression")))
    numClasses = _param("numClasses", "number of classes (0 for regression)", _number("numClasses", integer=True, low=0))
    inputDim = _param("inputDim", "length of the feature vector", _number("inputDim", integer=True, low=1))
    history = _param("history", "per-epoch metrics of the fit", _json_dict)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(outputKind="multiclass", numClasses=0, history={})


def _capitalize(name: str) -> str:
    return name[0].upper() + name[1:]


def add_accessors(cls: type, names: list[str], setters: list[str] | None = None) -> type:
    """Adds ``getX`` for each Param name, and ``setX`` (returning ``self``) for those in ``setters``.

    Args:
        cls: the stage class.
        names: Params that get a getter.
        setters: Params that also get a setter; None means all of ``names``. A fitted Model passes
            only its transform-time Params, as pyspark Models do: setting ``epochs`` on a trained
            model would change nothing, and setting ``outputKind`` would break it.

    Generated rather than hand-written so that 30 Params cannot drift into 30 slightly different
    accessor pairs (a slip horovod.spark made).

    Example:
        >>> add_accessors(KerasModel, ["featuresCol", "epochs"], setters=["featuresCol"])
    """
    settable = set(names if setters is None else setters)
    for name in names:
        getter, setter = "get" + _capitalize(name), "set" + _capitalize(name)

        def make(n: str):
            def get(self):
                return self.getOrDefault(getattr(self, n))

            def set_(self, value):
                return self._set(**{n: value})

            get.__doc__ = f"Gets the value of `{n}` or its default."
            set_.__doc__ = f"Sets `{n}`; returns self."
            return get, set_

        get, set_ = make(name)
        if getter not in cls.__dict__:
            get.__name__ = getter
            setattr(cls, getter, get)
        if name in settable and setter not in cls.__dict__:
            set_.__name__ = setter
            setattr(cls, setter, set_)
    return cls


SHARED_PARAM_NAMES = [
    "featuresCol", "labelCol", "predictionCol", "probabilityCol", "seed", "task", "layers", "inputShape",
    "augmentation", "kernelInitializer", "optimizer",
    "learningRate", "momentum", "nesterov", "loss", "metrics", "batchSize", "epochs", "validationSplit",
    "validationCol", "earlyStoppingPatience", "earlyStoppingMonitor", "reduceLrPatience", "reduceLrFactor",
    "lrSchedule", "lrDecay", "lrStepEpochs", "lrStepFactor", "lrWarmupEpochs", "lrMinRate", "scaleLearningRate",
    "trainingMode", "cascadeEpochs", "cascadeGrowth", "cascadeFineTuneRate",
    "numProc", "backend", "storePath", "runId", "verbose", "reader", "readMode", "shuffleBufferRows",
    "memoryBudgetMB", "weightCol",
]
# What a fitted KerasModel learned about its data: getters only, fit sets them.
MODEL_PARAM_NAMES = ["outputKind", "numClasses", "inputDim"]
# The Params a fitted KerasModel's transform reads: the only ones it has setters for.
TRANSFORM_PARAM_NAMES = ["featuresCol", "predictionCol", "probabilityCol"]
