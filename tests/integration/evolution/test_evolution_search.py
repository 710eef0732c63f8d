"""EvolutionarySearch on local Spark: a small trained search on a sine wave beats persistence on a
held-out stretch; the model JSON loads; save/load; bad settings fail before any job."""
from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from deepflash import EvolutionarySearch, EvolutionarySearchModel, KerasEstimator, KerasModel

PERIOD, STEPS, TRAIN_STEPS = 25, 600, 480


def _series(steps: int = STEPS) -> np.ndarray:
    return np.sin(2 * np.pi * np.arange(steps) / PERIOD)


def _frame(spark, values: np.ndarray):
    # Shuffled rows: the search must order them by `t` itself.
    pdf = pd.DataFrame({"t": np.arange(len(values)), "value": values}).sample(frac=1.0, random_state=0)
    return spark.createDataFrame(pdf)


def _search(store: str, **kwargs) -> EvolutionarySearch:
    est = KerasEstimator(backend="local", epochs=25, batchSize=32, learningRate=0.01, seed=0, storePath=store)
    settings = dict(estimator=est, problem="trained", orderBy="t", valueCols=["value"], populationSize=4,
                    generations=2, parallelism=2, maxLookBack=6, maxLayers=2, maxUnits=8,
                    layerTypes=["dense", "lstm"], searchEpochs=6, track=False, seed=1)
    settings.update(kwargs)
    return EvolutionarySearch(**settings)


@pytest.fixture(scope="module")
def found(spark, tmp_path_factory):
    train = _frame(spark, _series()[:TRAIN_STEPS])
    return _search(str(tmp_path_factory.mktemp("store"))).fit(train)


@pytest.mark.slow
def test_trained_search_beats_persistence_on_a_held_out_stretch(spark, found):
    from deepflash.data.datasets import from_numpy
    from deepflash.ml.timeseries import window_arrays

    assert isinstance(found, EvolutionarySearchModel) and isinstance(found.bestModel, KerasModel)
    arch = found.architecture()
    assert 1 <= arch.look_back <= 6 and 1 <= len(arch.hidden) <= 2 and list(arch.layers)[0] == 1
    assert found.getBestLayers() == list(arch.layers) and found.getBestLayers()[-1] == 1
    history = found.trials
    assert list(history["generation"]) == [0, 1, 2]
    assert history["best_so_far"].iloc[-1] == pytest.approx(found.getBestFitness())
    assert (history["best_so_far"].diff().dropna() <= 1e-12).all()
    assert history["evaluated"].sum() <= 4 * 3
    # The held-out stretch: windows whose targets lie after the training series.
    series = _series()
    x, y = window_arrays(series[TRAIN_STEPS - arch.look_back:], arch.look_back)
    scored = found.transform(from_numpy(spark, x.reshape(len(x), -1), y)).toPandas()
    model_mae = float(np.mean(np.abs(scored["prediction"] - scored["label"])))
    persistence_mae = float(np.mean(np.abs(x[:, -1, 0] - y)))
    assert model_mae < persistence_mae, (model_mae, persistence_mae)


@pytest.mark.slow
def test_model_json_loads_with_model_from_json(found):
    import tensorflow as tf

    loaded = tf.keras.models.model_from_json(found.modelJson())
    trained = found.bestModel.getKerasModel()
    assert loaded.input_shape == (None, found.getBestLookBack()) and loaded.output_shape == (None, 1)
    loaded.set_weights(trained.get_weights())  # same layers, same weight shapes
    window = np.linspace(-1, 1, found.getBestLookBack())[None, :].astype(np.float32)
    assert np.allclose(loaded(window).numpy(), trained(window).numpy(), atol=1e-6)


@pytest.mark.slow
def test_search_and_model_save_and_load(found, tmp_path):
    found.write().save(str(tmp_path / "model"))
    loaded = EvolutionarySearchModel.load(str(tmp_path / "model"))
    for name in ("bestLookBack", "bestLayers", "bestLayerType", "bestActivation", "bestFitness", "populationSize"):
        assert loaded.getOrDefault(name) == found.getOrDefault(name)
    assert loaded.architecture() == found.architecture()
    assert loaded.trials["best"].tolist() == pytest.approx(found.trials["best"].tolist())
    assert loaded.bestParams == found.bestParams
    w0, w1 = found.bestModel.getKerasModel().get_weights(), loaded.bestModel.getKerasModel().get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1, strict=True))

    search = _search(str(tmp_path / "store"), generations=3, maxUnits=5)
    search.write().save(str(tmp_path / "search"))
    back = EvolutionarySearch.load(str(tmp_path / "search"))
    assert back.getGenerations() == 3 and back.getMaxUnits() == 5 and back.getLayerTypes() == ["dense", "lstm"]
    assert isinstance(back.getEstimator(), KerasEstimator) and back.getEstimator().getEpochs() == 25
    copied = search.copy({search.generations: 7})
    assert copied.getGenerations() == 7 and search.getGenerations() == 3


def test_builds_without_arguments_and_setters_return_self():
    search = EvolutionarySearch()
    assert search.setPopulationSize(6) is search and search.getPopulationSize() == 6
    assert EvolutionarySearchModel().getProblem() == "trained"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"minLayers": 3, "maxLayers": 2}, ValueError, r"`minLayers` == 3, must be <= `maxLayers` == 2"),
    ({"minLookBack": 4, "maxLookBack": 2}, ValueError, r"`minLookBack` == 4, must be <= `maxLookBack` == 2"),
    ({"populationSize": 1}, ValueError, r"`populationSize` == 1, must be an integer >= 2"),
    ({"elitism": 4}, ValueError, r"`elitism` == 4, must be < `populationSize` == 4"),
    ({"orderBy": "time"}, ValueError, r"`orderBy` names column\(s\) \['time'\] not in the DataFrame"),
    ({"valueCols": ["v"]}, ValueError, r"`valueCols` names column\(s\) \['v'\]"),
    ({"activations": ["swish"]}, ValueError, r"`activations` == \['swish'\]: unknown"),
])
def test_bad_settings_fail_before_any_job(spark, tmp_path, kwargs, error, match):
    df = _frame(spark, _series(100))
    sc = spark.sparkContext
    group = f"evolution-errors-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "validation test")
    try:
        with pytest.raises(error, match=match):
            _search(str(tmp_path / "store"), **kwargs).fit(df)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sc.statusTracker().getJobIdsForGroup(group) == []
    assert not (tmp_path / "store").exists()


def test_unordered_series_and_bad_params_are_refused(spark, tmp_path):
    df = _frame(spark, _series(100))
    with pytest.raises(ValueError, match=r"`orderBy` is not set"):
        EvolutionarySearch(estimator=KerasEstimator(backend="local"), valueCols=["value"]).fit(df)
    with pytest.raises(ValueError, match=r"`populationSize` == 0, must be >= 1"):
        EvolutionarySearch(populationSize=0)
    with pytest.raises(ValueError, match=r"`minLookBack` == 0, must be >= 1"):
        EvolutionarySearch(minLookBack=0)
    with pytest.raises(ValueError, match=r"`problem` == 'random', must be one of: trained, mae_sampling"):
        EvolutionarySearch(problem="random")


@pytest.mark.slow
@pytest.mark.connect
def test_mae_sampling_search_scores_without_training(spark, tmp_path):
    from deepflash.evolution.sampling import mae_random_sampling
    from deepflash.ml.timeseries import window_arrays

    found = _search(str(tmp_path / "store"), problem="mae_sampling", samples=20, generations=1, refit=False,
                    layerTypes=["lstm"]).fit(_frame(spark, _series(300)))
    assert found.getFitnessName() == "log_p" and found.bestModel is None
    assert list(found.trials["generation"]) == [0, 1]
    arch = found.architecture()
    x, y = window_arrays(_series(300), arch.look_back)
    expected = mae_random_sampling(x, y, arch.hidden, samples=20, seed=1).log_p
    assert found.getBestFitness() == pytest.approx(expected)
    assert found.trials["best_so_far"].iloc[-1] >= found.trials["best"].iloc[0]
    with pytest.raises(ValueError, match="has no best model"):
        found.transform(_frame(spark, _series(50)))
