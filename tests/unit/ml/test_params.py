"""Params of KerasEstimator and KerasModel (pyspark Params are pure Python: no SparkSession here).

Over 400 lines: one case or more per Param of the one table in deepflash.ml.params (its converter,
its default, its accessors), beside the checks that span several Params.
"""
from __future__ import annotations

import re

import pytest

from deepflash import KerasEstimator, KerasModel
from deepflash.ml.params import BACKENDS, SHARED_PARAM_NAMES, TASKS, TRANSFORM_PARAM_NAMES
from deepflash.networks.keras_compat import output_shape


def cap(name: str) -> str:
    return name[0].upper() + name[1:]


# A valid, non-default value for every Param, and what the getter returns for it.
VALID = {
    "featuresCol": ("x", "x"),
    "labelCol": ("y", "y"),
    "predictionCol": ("pred", "pred"),
    "probabilityCol": ("prob", "prob"),
    "seed": (42, 42),
    "task": ("Regression", "regression"),
    "layers": ("DEEP", "deep"),
    "inputShape": ((8.0, 8, 1), [8, 8, 1]),
    "augmentation": ([{"type": "Flip"}], [{"type": "flip", "mode": "horizontal"}]),
    "kernelInitializer": ("He_Normal", "he_normal"),
    "optimizer": ("SGD", "sgd"),
    "learningRate": (0.5, 0.5),
    "momentum": (0.9, 0.9),
    "nesterov": (True, True),
    "loss": ("MSE", "mse"),
    "metrics": ("mae", ["mae"]),
    "batchSize": (32, 32),
    "epochs": (3.0, 3),
    "validationSplit": (0, 0.0),
    "validationCol": ("isVal", "isVal"),
    "earlyStoppingPatience": (2, 2),
    "earlyStoppingMonitor": ("loss", "loss"),
    "reduceLrPatience": (1, 1),
    "reduceLrFactor": (0.5, 0.5),
    "lrSchedule": ("Cosine", "cosine"),
    "lrDecay": (1, 1.0),
    "lrStepEpochs": (3.0, 3),
    "lrStepFactor": (0.25, 0.25),
    "lrWarmupEpochs": (2, 2),
    "lrMinRate": (1e-5, 1e-5),
    "scaleLearningRate": (True, True),
    "trainingMode": ("Cascade", "cascade"),
    "cascadeEpochs": ((2.0, 3), [2, 3]),
    "cascadeGrowth": (2, 2.0),
    "cascadeFineTuneRate": (1, 1.0),
    "numProc": (4, 4),
    "backend": ("LOCAL", "local"),
    "storePath": ("/tmp/store", "/tmp/store"),
    "runId": ("run-1", "run-1"),
    "workerTimeout": (30, 30.0),
    "kerasBackend": ("TORCH", "torch"),
    "trainTimeout": (600, 600.0),
    "maxClassId": (20_000, 20_000),
    "verbose": (2, 2),
    "reader": ("PETASTORM", "petastorm"),
    "readMode": ("Stream", "stream"),
    "shuffleBufferRows": (500.0, 500),
    "memoryBudgetMB": (64, 64.0),
    "weightCol": ("w", "w"),
    # KerasModel only
    "outputKind": ("binary", "binary"),
    "numClasses": (2, 2),
    "inputDim": (784, 784),
}
MODEL_ONLY = {"outputKind", "numClasses", "inputDim"}


# --- accessors ---------------------------------------------------------------------------------

def test_estimator_builds_with_no_arguments_and_has_documented_defaults():
    est = KerasEstimator()
    assert est.getTask() == "classification"
    assert est.getLayers() == [{"type": "dense", "units": 64, "activation": "relu"}]
    assert est.getOptimizer() == "adam"
    assert est.getLearningRate() == 1e-3
    assert est.getLoss() == "auto"
    assert est.getMetrics() == []
    assert est.getBatchSize() == 128
    assert est.getEpochs() == 10
    assert est.getValidationSplit() == 0.1
    assert est.getEarlyStoppingMonitor() == "val_loss"
    assert est.getNumProc() == 1
    assert est.getBackend() == "horovod"
    assert est.getLrSchedule() == "none"
    assert (est.getLrDecay(), est.getLrStepEpochs(), est.getLrStepFactor()) == (0.1, 10, 0.5)
    assert (est.getLrWarmupEpochs(), est.getLrMinRate()) == (0, 0.0)
    assert est.getFeaturesCol() == "features" and est.getLabelCol() == "label"
    assert not est.isDefined(est.validationCol)
    assert not est.isDefined(est.runId)
    assert not est.isDefined(est.weightCol)  # unweighted, as pyspark.ml's HasWeightCol
    assert not any(est.isSet(p) for p in est.params)
    est.validateParams()  # the defaults are a consistent configuration


def test_estimator_params_are_exactly_the_shared_names():
    assert sorted(p.name for p in KerasEstimator().params) == sorted(SHARED_PARAM_NAMES)


def test_valid_table_covers_every_param():
    # history has a getter only: it is set by fit, not by users
    assert {p.name for p in KerasModel().params} - {"history"} == set(VALID)


def test_every_estimator_param_has_getter_and_chaining_setter():
    est = KerasEstimator()
    for param in est.params:
        value, expected = VALID[param.name]
        setter, getter = getattr(est, "set" + cap(param.name)), getattr(est, "get" + cap(param.name))
        assert setter(value) is est, param.name
        assert getter() == expected, param.name
        assert est.isSet(param), param.name
        assert est.getOrDefault(param) == expected


def test_setters_chain():
    est = KerasEstimator().setEpochs(2).setBatchSize(8).setOptimizer("nadam")
    assert (est.getEpochs(), est.getBatchSize(), est.getOptimizer()) == (2, 8, "nadam")


def test_model_has_getters_for_learned_params():
    model = KerasModel()
    assert model.getOutputKind() == "multiclass"
    assert model.getNumClasses() == 0
    assert model.getHistory() == {}
    assert not model.isDefined(model.inputDim)
    model._set(inputDim=10, numClasses=3, outputKind="MULTICLASS")  # as fit sets them
    assert (model.getInputDim(), model.getNumClasses(), model.getOutputKind()) == (10, 3, "multiclass")


def test_fitted_model_has_setters_only_for_transform_time_params():
    """As in pyspark Models: setting epochs on a trained model would change nothing, and setting
    outputKind would make transform misread the network's output."""
    model = KerasModel()
    for param in model.params:
        assert callable(getattr(model, "get" + cap(param.name))), param.name
        assert hasattr(model, "set" + cap(param.name)) == (param.name in TRANSFORM_PARAM_NAMES), param.name
    for name in ("setOutputKind", "setNumClasses", "setInputDim", "setEpochs", "setLabelCol", "setLayers"):
        assert not hasattr(KerasModel, name), name
    for name in TRANSFORM_PARAM_NAMES:
        value, expected = VALID[name]
        assert getattr(model, "set" + cap(name))(value) is model
        assert getattr(model, "get" + cap(name))() == expected


def test_model_without_network_says_so():
    with pytest.raises(ValueError, match="holds no trained network"):
        KerasModel().getKerasModel()


def test_model_history_is_json_and_copied():
    model = KerasModel()
    model._set(history={"loss": [1.0, 0.5]})
    hist = model.getHistory()
    assert hist == {"loss": [1.0, 0.5]}
    hist["loss"] = []
    assert model.getHistory() == {"loss": [1.0, 0.5]}
    with pytest.raises(TypeError, match="must be a dict, found list"):
        model._set(history=[1, 2])


# --- converter errors --------------------------------------------------------------------------

@pytest.mark.parametrize("name, value, message", [
    ("epochs", 0, "`epochs` == 0, must be >= 1"),
    ("epochs", -1, "`epochs` == -1, must be >= 1"),
    ("batchSize", 0, "`batchSize` == 0, must be >= 1"),
    ("learningRate", 0, "`learningRate` == 0.0, must be > 0"),
    ("learningRate", -1, "`learningRate` == -1.0, must be > 0"),
    ("validationSplit", 1.0, "`validationSplit` == 1.0, must be < 1"),
    ("validationSplit", -0.5, "`validationSplit` == -0.5, must be >= 0"),
    ("reduceLrFactor", 1.0, "`reduceLrFactor` == 1.0, must be < 1"),
    ("reduceLrFactor", 0, "`reduceLrFactor` == 0.0, must be > 0"),
    ("momentum", 1, "`momentum` == 1.0, must be < 1"),
    ("numProc", 0, "`numProc` == 0, must be >= 1"),
    ("workerTimeout", 0, "`workerTimeout` == 0.0, must be > 0"),
    ("maxClassId", 0, "`maxClassId` == 0, must be >= 1"),
    ("verbose", 3, "`verbose` == 3, must be <= 2"),
    ("readMode", "disk", "`readMode` == 'disk', must be one of: auto, memory, stream"),
    ("reader", "parquet", "`reader` == 'parquet', must be one of: arrow, petastorm"),
    ("shuffleBufferRows", 0, "`shuffleBufferRows` == 0, must be >= 1"),
    ("memoryBudgetMB", 0, "`memoryBudgetMB` == 0.0, must be > 0"),
    ("lrSchedule", "linear", "`lrSchedule` == 'linear', must be one of: none, time, exponential, inverse_sqrt, "
                             "step, cosine"),
    ("lrDecay", -0.1, "`lrDecay` == -0.1, must be >= 0"),
    ("lrStepEpochs", 0, "`lrStepEpochs` == 0, must be >= 1"),
    ("lrStepFactor", 1, "`lrStepFactor` == 1.0, must be < 1"),
    ("lrStepFactor", 0, "`lrStepFactor` == 0.0, must be > 0"),
    ("lrWarmupEpochs", -1, "`lrWarmupEpochs` == -1, must be >= 0"),
    ("lrMinRate", -1e-3, "`lrMinRate` == -0.001, must be >= 0"),
    ("earlyStoppingPatience", -1, "`earlyStoppingPatience` == -1, must be >= 0"),
    ("backend", "gpu", "`backend` == 'gpu', must be one of: " + ", ".join(BACKENDS)),
    ("task", "clustering", "`task` == 'clustering', must be one of: " + ", ".join(TASKS)),
    ("learningRate", float("nan"), "`learningRate` == nan, must be a number"),
    ("inputShape", [28, 0, 1], "`inputShape` == [28, 0, 1], must be a list of 1 to 4 integers >= 1, e.g. [28, 28, 1]"),
    ("inputShape", [], "`inputShape` == [], must be a list of 1 to 4 integers >= 1, e.g. [28, 28, 1]"),
    ("inputShape", [2.5, 2], "`inputShape` == [2.5, 2], must be a list of 1 to 4 integers >= 1, e.g. [28, 28, 1]"),
    ("inputShape", "28x28", "`inputShape` == '28x28', must be a list of 1 to 4 integers >= 1, e.g. [28, 28, 1]"),
    ("kernelInitializer", "zeros", "`kernelInitializer` == 'zeros', must be one of: glorot_uniform, glorot_normal, "
                                   "he_uniform, he_normal, lecun_uniform, lecun_normal"),
    ("augmentation", [{"type": "blur"}], "`augmentation[0].type` == 'blur', must be one of: rotate, zoom, shift, "
                                         "flip, cutout"),
    ("augmentation", [{"type": "flip"}, {"type": "zoom", "factor": 1.0}],
     "`augmentation[1].factor` == 1.0, must be a number in (0, 1)"),
    ("augmentation", [{"type": "rotate", "factor": 0}], "`augmentation[0].factor` == 0, must be a number in (0, 0.5]"),
    ("augmentation", [{"type": "rotate", "factor": 0.6}],
     "`augmentation[0].factor` == 0.6, must be a number in (0, 0.5]"),
    ("augmentation", [{"type": "shift", "factor": True}],
     "`augmentation[0].factor` == True, must be a number in (0, 1)"),
    ("augmentation", [{"type": "shift"}], "`augmentation[0].factor`: missing, required for type 'shift'"),
    ("augmentation", [{"type": "shift", "factor": 0.1, "fill": 0}],
     "`augmentation[0].fill`: unknown key for type 'shift', valid keys are: factor"),
    ("augmentation", [{"type": "cutout", "size": 0}], "`augmentation[0].size` == 0, must be an integer >= 1"),
    ("augmentation", [{"type": "cutout", "size": 2.5}], "`augmentation[0].size` == 2.5, must be an integer >= 1"),
    ("augmentation", [{"type": "flip", "mode": "diagonal"}],
     "`augmentation[0].mode` == 'diagonal', must be one of: horizontal, vertical, horizontal_and_vertical"),
])
def test_converter_value_errors(name, value, message):
    est = KerasEstimator()
    before = est.getOrDefault(name)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        getattr(est, "set" + cap(name))(value)
    assert est.getOrDefault(name) == before  # a rejected value leaves the Param alone
    assert not est.isSet(name)


def test_train_timeout_is_unset_by_default_and_must_be_positive():
    est = KerasEstimator()
    assert not est.isDefined(est.trainTimeout)
    with pytest.raises(ValueError, match=r"^`trainTimeout` == -1\.0, must be > 0$"):
        est.setTrainTimeout(-1)
    assert est.setTrainTimeout(60).getTrainTimeout() == 60.0


@pytest.mark.parametrize("name, value, message", [
    ("epochs", True, "`epochs` == True, must be a number, found bool"),
    ("batchSize", False, "`batchSize` == False, must be a number, found bool"),
    ("learningRate", True, "`learningRate` == True, must be a number, found bool"),
    ("validationSplit", True, "`validationSplit` == True, must be a number, found bool"),
    ("numProc", True, "`numProc` == True, must be a number, found bool"),
    ("epochs", 2.5, "`epochs` == 2.5, must be an integer, found float"),
    ("epochs", "3", "`epochs` == '3', must be an integer, found str"),
    ("learningRate", "0.1", "`learningRate` == '0.1', must be a number, found str"),
    ("task", 1, "`task` == 1, must be a string, found int"),
    ("metrics", [1], "`metrics` == [1], must be a list of strings"),
    ("layers", 5, "`layers` must be a list of dicts or a preset name, found int"),
    ("lrSchedule", 1, "`lrSchedule` == 1, must be a string, found int"),
    ("lrStepEpochs", 1.5, "`lrStepEpochs` == 1.5, must be an integer, found float"),
    ("lrDecay", "0.1", "`lrDecay` == '0.1', must be a number, found str"),
    ("layers", [{"type": "dense", "units": {1, 2}}], "`layers` must be JSON-serializable"),
    ("augmentation", {"type": "flip"}, "`augmentation` == {'type': 'flip'}, must be a list of augmentation dicts"),
    ("augmentation", ["flip"], "`augmentation[0]` == 'flip', must be a dict with a `type`, found str"),
    ("kernelInitializer", 1, "`kernelInitializer` == 1, must be a string, found int"),
    ("weightCol", 1.5, "`weightCol` == 1.5, must be a string, found float"),
    ("weightCol", ["w"], "`weightCol` == ['w'], must be a string, found list"),
])
def test_converter_type_errors(name, value, message):
    est = KerasEstimator()
    with pytest.raises(TypeError, match=re.escape(message)):
        getattr(est, "set" + cap(name))(value)
    assert not est.isSet(name)


def test_constructor_applies_the_converters():
    with pytest.raises(ValueError, match=re.escape("`epochs` == 0, must be >= 1")):
        KerasEstimator(epochs=0)
    with pytest.raises(ValueError, match=re.escape("`backend` == 'gpu'")):
        KerasEstimator(backend="gpu")
    with pytest.raises(TypeError, match=re.escape("`batchSize` == True")):
        KerasEstimator(batchSize=True)


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError, match="takes Params by keyword only"):
        KerasEstimator("features")
    with pytest.raises(TypeError, match="takes Params by keyword only"):
        KerasEstimator().setParams(3)


def test_unknown_keyword_names_the_param_and_the_close_ones():
    with pytest.raises(TypeError, match=re.escape("KerasEstimator has no Param `epoch`; did you mean epochs?")):
        KerasEstimator(epoch=3)
    with pytest.raises(TypeError, match=re.escape("KerasEstimator has no Param `learning_rate`; did you mean "
                                                  "learningRate")):
        KerasEstimator().setParams(learning_rate=0.1)
    with pytest.raises(TypeError, match="KerasModel has no Param `epochs`"):  # a fitted model: transform Params only
        KerasModel().setParams(epochs=3)


def test_signatures_list_every_param_with_its_default():
    import inspect

    from deepflash.ml.params import ESTIMATOR_PARAMS

    for method in (KerasEstimator.__init__, KerasEstimator.setParams):
        params = inspect.signature(method).parameters
        assert list(params)[1:] == list(SHARED_PARAM_NAMES)
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[1:])
    params = inspect.signature(KerasEstimator).parameters
    assert params["epochs"].default == 10 and params["backend"].default == "horovod"
    assert params["runId"].default is None  # no default: unset
    assert {spec.name: spec.default for spec in ESTIMATOR_PARAMS}["epochs"] == KerasEstimator().getEpochs()
    assert list(inspect.signature(KerasModel.setParams).parameters)[1:] == list(TRANSFORM_PARAM_NAMES)


def test_model_takes_transform_params_by_keyword():
    model = KerasModel(predictionCol="p")
    assert model.getPredictionCol() == "p"
    assert model.setParams(featuresCol="x", probabilityCol=None) is model
    assert (model.getFeaturesCol(), model.getProbabilityCol()) == ("x", "probability")


def test_backend_and_reader_choices_are_the_registries():
    from deepflash.backends import BACKENDS as backend_registry
    from deepflash.data.readers import READERS as reader_registry
    from deepflash.ml.params import READERS

    assert set(BACKENDS) == set(backend_registry) and set(READERS) == set(reader_registry)


def test_param_specs_declare_each_param_once():
    from deepflash.ml.params import KERAS_PARAMS, MODEL_PARAM_NAMES, KerasModelParams, KerasParams

    table = [spec.name for spec in KERAS_PARAMS]
    assert len(table) == len(set(table))
    assert set(table) == {p.name for p in KerasModel().params} == set(SHARED_PARAM_NAMES) | set(MODEL_PARAM_NAMES)
    for spec in KERAS_PARAMS:
        owner = KerasModelParams if spec.fitted else KerasParams
        assert getattr(owner, spec.name).doc == spec.doc, spec.name


# --- keyword constructor, setParams, copy ------------------------------------------------------

def test_keyword_constructor_sets_values():
    layers = ({"type": "dense", "units": 8, "activation": "relu"}, {"type": "dropout", "rate": 0.1})
    est = KerasEstimator(layers=layers, optimizer="RMSprop", learningRate=0.01, epochs=3.0, batchSize=16,
                         task="Regression", loss="MAE", backend="local", seed=7, validationCol="isVal",
                         metrics="mse", runId="r1", weightCol="w")
    assert est.getLayers() == [dict(layer) for layer in layers]
    assert isinstance(est.getLayers(), list)
    assert est.getOptimizer() == "rmsprop"
    assert est.getLearningRate() == 0.01
    assert est.getEpochs() == 3 and isinstance(est.getEpochs(), int)
    assert est.getBatchSize() == 16
    assert est.getTask() == "regression"
    assert est.getLoss() == "mae"
    assert est.getBackend() == "local"
    assert est.getSeed() == 7
    assert est.getValidationCol() == "isVal"
    assert est.getMetrics() == ["mse"]
    assert est.getRunId() == "r1"
    assert est.getWeightCol() == "w"
    assert est.isSet(est.epochs) and not est.isSet(est.numProc)
    est.validateParams()


def test_weight_col_is_pyspark_shared_param():
    from pyspark.ml.param.shared import HasWeightCol

    est = KerasEstimator(weightCol="w")
    assert isinstance(est, HasWeightCol) and isinstance(KerasModel(), HasWeightCol)
    assert HasWeightCol.getWeightCol(est) == "w"
    assert "weightCol" in est.paramValues()
    assert "weightCol" not in KerasEstimator().paramValues()  # unset: no weights


def test_layers_are_copied_on_set():
    layers = [{"type": "dense", "units": 8}]
    est = KerasEstimator(layers=layers)
    layers[0]["units"] = 99
    assert est.getLayers() == [{"type": "dense", "units": 8}]


def test_set_params_sets_only_what_is_given():
    est = KerasEstimator(epochs=4, batchSize=16)
    assert est.setParams(batchSize=64, optimizer="adamax") is est
    assert (est.getEpochs(), est.getBatchSize(), est.getOptimizer()) == (4, 64, "adamax")


def test_copy_carries_values_and_is_independent():
    est = KerasEstimator(epochs=4, layers=[{"type": "dense", "units": 8}], runId="a")
    twin = est.copy({est.batchSize: 32})
    assert twin is not est and isinstance(twin, KerasEstimator)
    assert twin.uid == est.uid
    assert twin.getEpochs() == 4 and twin.getRunId() == "a"
    assert twin.getBatchSize() == 32
    assert est.getBatchSize() == 128 and not est.isSet(est.batchSize)

    twin.setEpochs(9).setOptimizer("sgd")
    twin.getLayers()[0]["units"] = 99
    assert est.getEpochs() == 4 and est.getOptimizer() == "adam"
    assert est.getLayers() == [{"type": "dense", "units": 8}]
    est.setLearningRate(0.5)
    assert twin.getLearningRate() == 1e-3


def test_copy_applies_converters_to_extra():
    est = KerasEstimator()
    with pytest.raises(ValueError, match=re.escape("`epochs` == 0, must be >= 1")):
        est.copy({est.epochs: 0})


def test_copy_values_into_model():
    est = KerasEstimator(epochs=4, optimizer="sgd", task="regression")
    model = KerasModel()
    est._copyValues(model)
    assert (model.getEpochs(), model.getOptimizer(), model.getTask()) == (4, "sgd", "regression")


# --- cross-Param validation --------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"optimizer": "lbfgs"}, "`optimizer` == 'lbfgs', must be one of: sgd, adagrad"),
    ({"loss": "hinge"}, "`loss` == 'hinge', must be one of: auto,"),
    ({"layers": "huge"}, "`layers` == 'huge': unknown preset, must be one of: simple, deep, tuned_mlp"),
    ({"layers": [{"type": "dense2", "units": 3}]}, "`layers`[0]: unknown layer type 'dense2'"),
    ({"layers": [{"type": "dense"}]}, "`layers`[0] (dense): missing required key `units`"),
    ({"validationSplit": 0, "earlyStoppingPatience": 3},
     "`earlyStoppingMonitor` == 'val_loss' needs validation data"),
    ({"validationSplit": 0, "reduceLrPatience": 2, "earlyStoppingMonitor": "val_accuracy"},
     "`earlyStoppingMonitor` == 'val_accuracy' needs validation data"),
    ({"numProc": 2, "backend": "local"}, "`numProc` == 2, must be 1 with backend='local'"),
    ({"task": "regression", "loss": "categorical_crossentropy"},
     "`loss` == 'categorical_crossentropy' does not fit task 'regression'"),
    ({"task": "regression", "loss": "binary_crossentropy"},
     "`loss` == 'binary_crossentropy' does not fit task 'regression'"),
    ({"task": "regression", "loss": "cce"}, "`loss` == 'cce' does not fit task 'regression'"),
    ({"lrSchedule": "inverse_sqrt", "lrDecay": 0}, "`lrDecay` == 0.0, must be > 0 with lrSchedule='inverse_sqrt'"),
    ({"lrSchedule": "cosine", "epochs": 3, "lrWarmupEpochs": 3},
     "`lrWarmupEpochs` == 3, must be < epochs (3) with lrSchedule='cosine'"),
    ({"lrSchedule": "cosine", "learningRate": 0.01, "lrMinRate": 0.02},
     "`lrMinRate` == 0.02, must be < learningRate (0.01) with lrSchedule='cosine'"),
    ({"augmentation": [{"type": "flip"}]},
     "`augmentation` needs an image `inputShape` [height, width, channels], found None"),
    ({"augmentation": [{"type": "flip"}], "inputShape": [64]},
     "`augmentation` needs an image `inputShape` [height, width, channels], found [64]"),
    ({"augmentation": [{"type": "flip"}, {"type": "cutout", "size": 9}], "inputShape": [8, 10, 1]},
     "`augmentation[1].size` == 9, must be <= 8, the smaller side of `inputShape` [8, 10, 1]"),
    ({"layers": "fashion_cnn"}, "`layers` == 'fashion_cnn' needs an image `inputShape` [height, width, channels], "
                                "found None"),
    ({"layers": "fashion_cnn", "inputShape": [784]}, "`layers` == 'fashion_cnn' needs an image `inputShape`"),
    ({"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3, "kernel_initializer": "ones"}],
      "inputShape": [8, 8, 1]}, "`layers`[0] (conv2d): `kernel_initializer` == 'ones', must be one of: glorot_uniform"),
])
def test_validate_params_rejects(kwargs, message):
    est = KerasEstimator(**kwargs)  # each value passes its own converter ...
    with pytest.raises(ValueError, match=re.escape(message)):
        est.validateParams()  # ... but not the checks across Params


@pytest.mark.parametrize("kwargs", [
    {"validationSplit": 0, "earlyStoppingPatience": 3, "earlyStoppingMonitor": "loss"},
    {"validationSplit": 0, "earlyStoppingPatience": 3, "validationCol": "isVal"},
    {"validationSplit": 0.2, "earlyStoppingPatience": 3, "reduceLrPatience": 1},
    {"validationSplit": 0},  # nothing watches val_loss
    {"numProc": 2, "backend": "horovod"},
    {"task": "regression", "loss": "mae"},
    {"task": "regression", "loss": "mean_squared_error"},
    {"loss": "categorical_crossentropy"},
    {"layers": "tuned_mlp", "optimizer": "NADAM"},
    {"lrSchedule": "cosine", "epochs": 3, "lrWarmupEpochs": 2, "lrMinRate": 1e-4},
    {"lrSchedule": "time", "lrDecay": 0},  # k = 0: a constant rate
    {"lrSchedule": "step", "lrWarmupEpochs": 50},  # warm-up belongs to cosine; other schedules ignore it
    {"layers": "fashion_cnn", "inputShape": [28, 28, 1], "kernelInitializer": "he_uniform"},
    {"inputShape": [28, 28, 1], "augmentation": [{"type": "cutout", "size": 28}, {"type": "rotate", "factor": 0.5}]},
    {"inputShape": [64]},  # no augmentation: any shape whose product fits (checked against the data at plan time)
])
def test_validate_params_accepts(kwargs):
    assert KerasEstimator(**kwargs).validateParams() is None


def test_metrics_default_follows_task():
    assert KerasEstimator()._metrics() == ["accuracy"]
    assert KerasEstimator(task="regression")._metrics() == ["mae"]
    assert KerasEstimator(metrics=["AUC", "mse"])._metrics() == ["AUC", "mse"]


def test_set_model_rejects_non_models_and_skips_layer_validation():
    tf = pytest.importorskip("tensorflow")
    est = KerasEstimator(layers="no_such_preset")
    with pytest.raises(ValueError, match="unknown preset"):
        est.validateParams()
    with pytest.raises(TypeError, match="setModel expects a keras.Model, found dict"):
        est.setModel({})
    inputs = tf.keras.Input((3,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, activation="softmax")(inputs))
    assert est.setModel(model) is est
    est.validateParams()  # the given model replaces `layers`
    for name, value in (("inputShape", [3, 1]), ("augmentation", [{"type": "flip", "mode": "horizontal"}])):
        with pytest.raises(ValueError, match=re.escape(f"`{name}` == {value!r} shapes networks built from "
                                                       "`layers`; the model given to setModel")):
            est.copy({getattr(est, name): value}).setModel(model).validateParams()
    assert output_shape(est.getModel()) == (None, 2)
    assert est.setModel(None).getModel() is None
    with pytest.raises(ValueError, match="unknown preset"):
        est.validateParams()


# --- shared suite over both stages -------------------------------------------------------------

STAGES = [KerasEstimator, KerasModel]


@pytest.mark.parametrize("cls", STAGES)
def test_stage_builds_with_no_arguments(cls):
    stage = cls()
    assert stage.uid.startswith(cls.__name__)
    assert stage.getEpochs() == 10
    assert stage.getPredictionCol() == "prediction"


@pytest.mark.parametrize("cls", STAGES)
def test_stage_setters_return_self(cls):
    stage = cls()
    names = [p.name for p in stage.params if p.name != "history"]
    assert set(SHARED_PARAM_NAMES) <= set(names)
    if cls is KerasModel:
        assert MODEL_ONLY <= set(names)
    else:
        assert not MODEL_ONLY & set(names)
    for name in names:
        value, expected = VALID[name]
        if hasattr(stage, "set" + cap(name)):
            assert getattr(stage, "set" + cap(name))(value) is stage, name
        else:
            stage._set(**{name: value})
        assert getattr(stage, "get" + cap(name))() == expected, name


@pytest.mark.parametrize("cls", STAGES)
def test_stage_explain_params(cls):
    stage = cls()._set(epochs=7)
    text = stage.explainParams()
    for param in stage.params:
        assert param.doc, param.name
        assert f"{param.name}: {param.doc}" in text
    assert "current: 7" in stage.explainParam("epochs")


@pytest.mark.parametrize("cls", STAGES)
def test_stage_instances_do_not_share_state(cls):
    a, b = cls(), cls()
    assert a.uid != b.uid
    a.setPredictionCol("p")._set(epochs=2)
    a.getMetrics().append("x")
    assert (b.getEpochs(), b.getPredictionCol()) == (10, "prediction")
    assert b.getMetrics() == []


@pytest.mark.parametrize("cls", STAGES)
def test_stage_rejects_bad_values(cls):
    with pytest.raises(ValueError, match=re.escape("`epochs` == -1, must be >= 1")):
        cls()._set(epochs=-1)


@pytest.mark.parametrize("value, message", [
    ("", "`runId` == '', must be a non-empty name"),
    ("../../escaped-run", "`runId` == '../../escaped-run', must not contain '..'"),
    ("/abs/run", "found '/'"),
    ("a\\b", "found '\\\\'"),
    ("run 1;rm", "found ' ', ';'"),
    ("x" * 129, "`runId` has 129 characters, must have at most 128"),
])
def test_run_id_is_one_safe_directory_name(value, message):
    """A runId names one directory under the store's runs/: empty, '..', a path separator or an unsafe
    character is refused by name, and the Param stays unset."""
    est = KerasEstimator()
    with pytest.raises(ValueError, match=re.escape(message)):
        est.setRunId(value)
    assert not est.isSet("runId")
    assert est.setRunId("run-1.a_b").getRunId() == "run-1.a_b"
