"""Architecture encoding, Keras configs and the trained-error problem."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from deepflash.evolution import Architecture, ArchitectureSpace, GeneticAlgorithm, TrainedErrorProblem, TrainingSettings
from deepflash.evolution.problems import chronological_split

SPACE = ArchitectureSpace(look_back=(1, 5), hidden_layers=(1, 3), units=(1, 6), layer_types=("lstm", "dense"),
                          activations=("tanh", "relu"))


def test_encode_decode_round_trip_over_the_whole_space():
    low, high = SPACE.bounds()
    assert low == (1, 1, 0, 0, 1, 1, 1) and high == (5, 3, 1, 1, 6, 6, 6)
    for look_back, count, kind, act in itertools.product(range(1, 6), range(1, 4), range(2), range(2)):
        hidden = tuple(range(1, count + 1))
        arch = Architecture(look_back, (1, *hidden, 1), SPACE.layer_types[kind], SPACE.activations[act])
        encoding = SPACE.encode(arch)
        assert SPACE.decode(encoding) == arch
        assert len(encoding) == len(low)
    # Units past the layer count are ignored and canonically set to the lowest.
    assert SPACE.decode((2, 1, 0, 0, 4, 6, 5)) == Architecture(2, (1, 4, 1))
    assert SPACE.encode(SPACE.decode((2, 1, 0, 0, 4, 6, 5))) == (2, 1, 0, 0, 4, 1, 1)


def test_encode_rejects_what_lies_outside_the_space():
    with pytest.raises(ValueError, match=r"hidden layers == 4 lies outside the space's \[1, 3\]"):
        SPACE.encode(Architecture(2, (1, 2, 2, 2, 2, 1)))
    with pytest.raises(ValueError, match="activation == 'sigmoid' is not among"):
        SPACE.encode(Architecture(2, (1, 2, 1), activation="sigmoid"))
    with pytest.raises(ValueError, match=r"units == 7"):
        SPACE.encode(Architecture(2, (1, 7, 1)))


@pytest.mark.parametrize("kwargs, match", [
    ({"hidden_layers": (3, 2)}, r"`minLayers` == 3, must be <= `maxLayers` == 2"),
    ({"hidden_layers": (0, 2)}, r"`minLayers` == 0, must be an integer >= 1"),
    ({"look_back": (0, 4)}, r"`minLookBack` == 0, must be an integer >= 1"),
    ({"look_back": (5, 4)}, r"`minLookBack` == 5, must be <= `maxLookBack` == 4"),
    ({"units": (1, 0)}, r"`maxUnits` == 0"),
    ({"layer_types": ("gru",)}, r"`layer_types` == \['gru'\]: unknown"),
    ({"activations": ()}, r"`activations` is empty"),
])
def test_bad_space(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ArchitectureSpace(**kwargs)


def test_layer_specs_and_keras_config_load_with_model_from_json():
    import tensorflow as tf

    lstm = Architecture(3, (1, 4, 2, 1))
    assert [s["return_sequences"] for s in lstm.layer_specs()] == [True, False]
    assert lstm.input_shape() == [3, 1] and lstm.input_dim == 3
    dense = Architecture(4, (2, 5, 1), layer_type="dense", activation="relu")
    assert dense.layer_specs() == [{"type": "dense", "units": 5, "activation": "relu"}]
    assert dense.input_shape() is None and dense.input_dim == 8
    for arch in (lstm, dense):
        text = arch.model_json()
        loaded = tf.keras.models.model_from_json(text)
        assert json.loads(text)["class_name"] in ("Functional", "Model")
        assert loaded.input_shape == (None, arch.input_dim) and loaded.output_shape == (None, 1)
        kinds = [type(layer).__name__ for layer in loaded.layers]
        assert kinds.count("LSTM" if arch.layer_type == "lstm" else "Dense") == len(arch.hidden) + (
            arch.layer_type == "dense")
        units = [layer.units for layer in loaded.layers if type(layer).__name__ in ("LSTM", "Dense")]
        assert units == [*arch.hidden, 1]


def test_chronological_split_scores_every_look_back_on_the_same_targets():
    for look_back in (1, 3, 5):
        train, val = chronological_split(100, look_back, 0.2)
        targets = np.arange(100 - look_back) + look_back
        assert targets[val].tolist() == list(range(80, 100))
        assert targets[train].max() == 79


@pytest.mark.slow
def test_trained_error_beats_the_mean_predictor_and_more_training_helps():
    series = np.sin(2 * np.pi * np.arange(300) / 25)
    arch = Architecture(4, (1, 8, 1), layer_type="dense")
    short = TrainedErrorProblem(series, SPACE, TrainingSettings(epochs=1, learning_rate=0.01))
    longer = TrainedErrorProblem(series, SPACE, TrainingSettings(epochs=40, learning_rate=0.01))
    mean_mae = float(np.mean(np.abs(series[240:] - series[:240].mean())))
    short_mae, long_mae = short.evaluate(arch)[0], longer.evaluate(arch)[0]
    assert long_mae < short_mae and long_mae < 0.25 * mean_mae


def test_trained_error_problem_rejects_series_too_short():
    with pytest.raises(ValueError, match=r"`maxLookBack` == 5 leaves 1 windows"):
        TrainedErrorProblem(np.arange(6.0), SPACE)
    with pytest.raises(ValueError, match=r"`loss` == 'hinge'"):
        TrainingSettings(loss="hinge")


@pytest.mark.slow
def test_ga_on_trained_error_improves():
    series = np.sin(2 * np.pi * np.arange(200) / 25)
    space = ArchitectureSpace(look_back=(1, 4), hidden_layers=(1, 2), units=(1, 8), layer_types=("dense",),
                              activations=("tanh", "relu"))
    problem = TrainedErrorProblem(series, space, TrainingSettings(epochs=8, learning_rate=0.02, batch_size=16))
    result = GeneticAlgorithm(population_size=4, generations=2, seed=0).run(problem)
    assert result.history[-1].best_so_far < result.history[0].mean
    assert result.best.fitness[0] == pytest.approx(problem.evaluate(result.best)[0], rel=1e-4)
