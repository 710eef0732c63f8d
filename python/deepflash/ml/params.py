"""Typed Params shared by KerasEstimator and KerasModel (pyspark.ml style).

Each converter turns a bad value into an error that names the param, says what was expected
and what was found, e.g. ```epochs` == -1, must be >= 1``. Checks that need several params
together (loss against task, monitor against validation) live in ``KerasEstimator._validate``.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

from pyspark.ml.param import TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasSeed,
    HasWeightCol,
)

from deepflash.ml.converters import (make_param, to_choice, to_epoch_list, to_json_dict, to_lower, to_number, to_str,
                                     to_str_list)
from deepflash.networks.cascade_plan import TRAINING_MODES
from deepflash.networks.augmentation import check_augmentation
from deepflash.networks.layers import INITIALIZERS
from deepflash.networks.schedules import SCHEDULES

TASKS = ("classification", "regression")
BACKENDS = ("horovod", "barrier", "local")
READ_MODES = ("auto", "memory", "stream")
READERS = ("arrow", "petastorm")


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


class _KerasParams(HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol, HasSeed, HasWeightCol):
    """Params shared by KerasEstimator and KerasModel."""

    # HasWeightCol's Param converts with TypeConverters.toString, whose error does not name the
    # Param; the same Param with a converter that does. Unset or "" means every weight is 1.
    weightCol = make_param("weightCol", "numeric column of per-example weights >= 0, multiplied into the loss; "
                       "unset or empty: every weight is 1", to_str("weightCol"))

    task = make_param("task", "classification or regression; binary vs multiclass is inferred from the labels",
                  to_choice("task", TASKS))
    layers = make_param("layers", "list of layer dicts (JSON-serializable) or a preset name: simple, deep, tuned_mlp, "
                    "fashion_cnn (needs inputShape)",
                    _layers)
    inputShape = make_param("inputShape", "shape the flat feature vector is reshaped to inside the model, e.g. "
                         "[28, 28, 1] (product = feature length); None keeps it flat", _input_shape)
    augmentation = make_param("augmentation", "train-time image augmentation steps (needs a rank-3 inputShape), e.g. "
                          "[{'type': 'shift', 'factor': 0.1}]: rotate, zoom, shift (factor), flip (mode), cutout "
                          "(size); never applied by transform", _augmentation)
    kernelInitializer = make_param("kernelInitializer", "kernel initializer of every dense and conv layer without its "
                               "own, and of the output layer: " + ", ".join(INITIALIZERS),
                               to_choice("kernelInitializer", INITIALIZERS))
    optimizer = make_param("optimizer", "sgd, adagrad, adadelta, rmsprop, adam, adamax or nadam",
                       to_lower("optimizer"))
    learningRate = make_param("learningRate", "learning rate, > 0", to_number("learningRate", low=0, low_open=True))
    momentum = make_param("momentum", "momentum for sgd and rmsprop, in [0, 1)",
                      to_number("momentum", low=0, high=1, high_open=True))
    nesterov = make_param("nesterov", "Nesterov momentum for sgd", TypeConverters.toBoolean)
    loss = make_param("loss", "auto, categorical_crossentropy, binary_crossentropy, mse or mae", to_lower("loss"))
    metrics = make_param("metrics", "Keras metric names; empty means accuracy (classification) or mae (regression)",
                     to_str_list("metrics"))
    batchSize = make_param("batchSize", "batch size per process, >= 1", to_number("batchSize", integer=True, low=1))
    epochs = make_param("epochs", "number of epochs, >= 1", to_number("epochs", integer=True, low=1))
    validationSplit = make_param("validationSplit", "fraction held out for validation, in [0, 1)",
                             to_number("validationSplit", low=0, high=1, high_open=True))
    validationCol = make_param("validationCol", "boolean column marking validation rows (overrides validationSplit)",
                           TypeConverters.toString)
    earlyStoppingPatience = make_param("earlyStoppingPatience", "epochs without improvement before stopping; 0 = off",
                                   to_number("earlyStoppingPatience", integer=True, low=0))
    earlyStoppingMonitor = make_param("earlyStoppingMonitor", "metric watched by early stopping and LR reduction",
                                  TypeConverters.toString)
    reduceLrPatience = make_param("reduceLrPatience", "epochs without improvement before the LR is reduced; 0 = off",
                              to_number("reduceLrPatience", integer=True, low=0))
    reduceLrFactor = make_param("reduceLrFactor", "factor the LR is multiplied by on plateau, in (0, 1)",
                            to_number("reduceLrFactor", low=0, high=1, low_open=True, high_open=True))
    lrSchedule = make_param("lrSchedule", "learning rate per epoch, starting from learningRate: none, time, exponential, "
                        "inverse_sqrt, step or cosine (see deepflash.networks.schedules); a plateau reduction multiplies it",
                        to_choice("lrSchedule", SCHEDULES))
    lrDecay = make_param("lrDecay", "k of the time (lr/(1+k*epoch)), exponential (lr*exp(-k*epoch)) and inverse_sqrt "
                     "(lr*k/sqrt(epoch), epochs counted from 1) schedules, >= 0", to_number("lrDecay", low=0))
    lrStepEpochs = make_param("lrStepEpochs", "the step schedule multiplies the rate by lrStepFactor every this many "
                          "epochs, >= 1", to_number("lrStepEpochs", integer=True, low=1))
    lrStepFactor = make_param("lrStepFactor", "factor of the step schedule, in (0, 1)",
                          to_number("lrStepFactor", low=0, high=1, low_open=True, high_open=True))
    lrWarmupEpochs = make_param("lrWarmupEpochs", "epochs of linear warm-up before the cosine decay, >= 0 and < epochs",
                            to_number("lrWarmupEpochs", integer=True, low=0))
    lrMinRate = make_param("lrMinRate", "the rate the cosine schedule decays towards, >= 0 and < learningRate",
                       to_number("lrMinRate", low=0))
    trainingMode = make_param("trainingMode", "standard (every layer trains every epoch) or cascade (one layer with "
                          "weights at a time, each under a fresh output layer; see deepflash.networks.cascade_plan)",
                          to_choice("trainingMode", TRAINING_MODES))
    cascadeEpochs = make_param("cascadeEpochs", "cascade: epochs per stage (one stage per layer with weights), summing "
                           "to epochs; [] splits epochs by cascadeGrowth", to_epoch_list("cascadeEpochs"))
    cascadeGrowth = make_param("cascadeGrowth", "cascade without cascadeEpochs: stage k gets epochs in proportion to "
                           "cascadeGrowth**k (each at least 1), >= 1", to_number("cascadeGrowth", low=1))
    cascadeFineTuneRate = make_param("cascadeFineTuneRate", "cascade: the layers of earlier stages train at "
                                 "learningRate times this, in [0, 1]; 0 freezes them",
                                 to_number("cascadeFineTuneRate", low=0, high=1))
    scaleLearningRate = make_param("scaleLearningRate", "multiply the learning rate by the number of processes",
                               TypeConverters.toBoolean)
    numProc = make_param("numProc", "number of training processes (horovod or barrier backend), >= 1",
                     to_number("numProc", integer=True, low=1))
    backend = make_param("backend", "horovod (Horovod on Spark executors), barrier (TensorFlow's "
                     "MultiWorkerMirroredStrategy on Spark executors, no Horovod) or local (in the driver)", to_choice("backend", BACKENDS))
    storePath = make_param("storePath", "store root: a local path or a filesystem URI; default under spark.local.dir",
                       TypeConverters.toString)
    runId = make_param("runId", "checkpoints go under this id; a fit with the same id resumes", TypeConverters.toString)
    verbose = make_param("verbose", "0 = quiet, 1 = log every epoch", to_number("verbose", integer=True, low=0, high=2))
    reader = make_param("reader", "how training processes read the materialized Parquet: arrow (pyarrow, the "
                    "default) or petastorm", to_choice("reader", READERS))
    readMode = make_param("readMode", "memory (each process caches its shard), stream (row groups read as training "
                      "goes, through a shuffle buffer; memory does not grow with the data) or auto (memory when "
                      "the shard fits memoryBudgetMB)", to_choice("readMode", READ_MODES))
    shuffleBufferRows = make_param("shuffleBufferRows", "rows in the streaming shuffle buffer, >= 1",
                               to_number("shuffleBufferRows", integer=True, low=1))
    memoryBudgetMB = make_param("memoryBudgetMB", "per-process memory for an in-memory shard (readMode auto), > 0",
                            to_number("memoryBudgetMB", low=0, low_open=True))

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

    outputKind = make_param("outputKind", "multiclass, binary or regression (inferred at fit time)",
                        to_choice("outputKind", ("multiclass", "binary", "regression")))
    numClasses = make_param("numClasses", "number of classes (0 for regression)", to_number("numClasses", integer=True, low=0))
    inputDim = make_param("inputDim", "length of the feature vector", to_number("inputDim", integer=True, low=1))
    history = make_param("history", "per-epoch metrics of the fit", to_json_dict)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(outputKind="multiclass", numClasses=0, history={})


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
