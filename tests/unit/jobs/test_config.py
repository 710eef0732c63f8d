"""Config parsing, --set overrides and the schema: every error names its key path."""
from __future__ import annotations

import pytest

from deepflash.jobs.config import ConfigError, apply_overrides, load_config, validate


@pytest.fixture()
def write(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "job.yaml"
        path.write_text(text)
        return str(path)

    return write


def test_every_shipped_config_validates():
    import glob

    names = {p.split("/")[-1] for p in glob.glob("conf/*.yaml") + glob.glob("conf/*.json")}
    assert {"default.yaml", "fashion_mnist_mlp.yaml", "fashion_mnist_search.yaml", "study_optimizers.yaml",
            "cluster.yaml"} <= names
    for name in names:
        config = load_config(f"conf/{name}")
        assert ("model" in config or "sampling" in config) and "output" in config


def test_overrides_parse_values_as_yaml_and_create_sections():
    config = apply_overrides({"model": {"epochs": 3}}, ["model.epochs=7", "model.layers=[{type: dense, units: 4}]",
                                                         "tracking.enabled=false", "data.limit=100"])
    assert config["model"]["epochs"] == 7
    assert config["model"]["layers"] == [{"type": "dense", "units": 4}]
    assert config["tracking"] == {"enabled": False}
    assert config["data"]["limit"] == 100


def test_overrides_do_not_change_the_input():
    original = {"model": {"epochs": 3}}
    apply_overrides(original, ["model.epochs=4"])
    assert original == {"model": {"epochs": 3}}


@pytest.mark.parametrize("override, match", [
    ("model.optimizer=adamm", r"^model\.optimizer: `optimizer` == 'adamm', must be one of: sgd, adagrad"),
    ("model.epochs=0", r"^model\.epochs: `epochs` == 0, must be >= 1"),
    ("model.epochs=five", r"^model\.epochs: `epochs` == 'five', must be an integer, found str"),
    ("model.learningrate=0.1", r"^model\.learningrate: unknown key; valid keys are: .*learningRate"),
    ("model.layers=[{type: dense, units: -3}]", r"^model\.layers: .*units"),
    ("model.layers=huge", r"^model\.layers: .*unknown preset"),
    ("model.loss=mse", None),
    ("model.lrSchedule=linear", r"^model\.lrSchedule: `lrSchedule` == 'linear', must be one of: none, time, "
                                r"exponential, inverse_sqrt, step, cosine$"),
    ("model.lrDecay=-1", r"^model\.lrDecay: `lrDecay` == -1\.0, must be >= 0$"),
    ("model.lrStepEpochs=0", r"^model\.lrStepEpochs: `lrStepEpochs` == 0, must be >= 1$"),
    ("model.lrStepFactor=2", r"^model\.lrStepFactor: `lrStepFactor` == 2\.0, must be < 1$"),
    ("model.lrWarmupEpochs=two", r"^model\.lrWarmupEpochs: `lrWarmupEpochs` == 'two', must be an integer"),
    ("model.lrMinRate=-0.5", r"^model\.lrMinRate: `lrMinRate` == -0\.5, must be >= 0$"),
    ("model.lrschedule=cosine", r"^model\.lrschedule: unknown key; valid keys are: .*lrSchedule"),
    ("data.source=csv", r"^data\.source: 'csv' is not one of digits, fashion_mnist, idx, parquet, table"),
    ("data.test_fraction=1.5", r"^data\.test_fraction: expected a number in \(0, 1\), found 1.5"),
    ("data.limit=true", r"^data\.limit: expected an integer, found bool True"),
    ("data.colour=red", r"^data\.colour: unknown key; valid keys are: source, path"),
    ("search.maxEvals=0", r"^search\.maxEvals: `maxEvals` == 0, must be >= 1"),
    ("search.algo=bayes", r"^search\.algo: `algo` == 'bayes', must be one of: tpe, random"),
    ("search.engine=nevergrad", r"^search\.engine: expected one of hyperopt, optuna, found 'nevergrad'"),
    ("search.sampler=tpe", r"^search\.sampler: unknown key; valid keys are: .*algo.*engine"),
    ("study.optimizers=[adam, adamm]", r"^study\.optimizers\[1\]: `optimizer` == 'adamm'"),
    ("study.losses=[hinge]", r"^study\.losses\[0\]: "),
    ("tracking.enabled=maybe", r"^tracking\.enabled: expected true or false, found str 'maybe'"),
    ("spark.conf=4", r"^spark\.conf: expected a mapping, found int 4"),
    ("spark.remote=localhost:15002", r"^spark\.remote: expected a Spark Connect URL, sc://host:port .*"
                                     r"found 'localhost:15002'"),
    ("spark.remote=http://host:15002", r"^spark\.remote: expected a Spark Connect URL"),
    ("spark.remote=5", r"^spark\.remote: expected a Spark Connect URL, found int 5"),
    ("extras.x=1", r"^extras: unknown section; valid sections are: data, model, search"),
    ("evaluation.human_error=2", r"^evaluation\.human_error: expected an error rate in \[0, 1\], found 2"),
    ("evaluation.beta=0", r"^evaluation\.beta: expected a number > 0, found 0"),
    ("model.epochs.x=1", r"^--set model\.epochs\.x: model\.epochs is not a section"),
    ("model.weightCol=5", r"^model\.weightCol: `weightCol` == 5, must be a string, found int$"),
    ("model.weightcol=w", r"^model\.weightcol: unknown key; valid keys are: .*weightCol"),
])
def test_bad_values_fail_with_the_key_path(write, override, match):
    path = write("model:\n  epochs: 2\n  optimizer: adam\n")
    if match is None:
        assert load_config(path, [override])["model"]["loss"] == "mse"
        return
    with pytest.raises(ConfigError, match=match):
        load_config(path, [override])


def test_search_engine_optuna_checks_optuna_keys(write):
    path = write("search:\n  engine: optuna\n  sampler: random\n  pruner: median\n  maxEvals: 3\n")
    assert load_config(path)["search"] == {"engine": "optuna", "sampler": "random", "pruner": "median", "maxEvals": 3}
    with pytest.raises(ConfigError, match=r"^search\.pruner: `pruner` == 'early', must be one of: none, median"):
        load_config(path, ["search.pruner=early"])
    with pytest.raises(ConfigError, match=r"^search\.algo: unknown key; valid keys are: .*sampler.*engine"):
        load_config(path, ["search.algo=tpe"])


def test_preset_alias_and_cross_param_rules(write):
    config = load_config(write("model:\n  preset: deep\n"))
    assert config["model"]["layers"] == "deep"
    with pytest.raises(ConfigError, match="give either `preset` or `layers`"):
        load_config(write("model:\n  preset: deep\n  layers: simple\n"))
    with pytest.raises(ConfigError, match=r"^model\.numProc: `numProc` == 2, must be 1 with backend=.local."):
        load_config(write("model:\n  backend: local\n  numProc: 2\n"))


def test_lr_schedule_keys_convert_and_cross_checks_name_the_key(write):
    config = load_config(write("model:\n  epochs: 8\n  lrSchedule: Cosine\n  lrWarmupEpochs: 2\n  lrMinRate: 1.0e-5\n"))
    assert (config["model"]["lrSchedule"], config["model"]["lrWarmupEpochs"]) == ("cosine", 2)
    path = write("model:\n  epochs: 2\n  lrSchedule: cosine\n")
    with pytest.raises(ConfigError, match=r"^model\.lrWarmupEpochs: `lrWarmupEpochs` == 2, must be < epochs \(2\)"):
        load_config(path, ["model.lrWarmupEpochs=2"])
    with pytest.raises(ConfigError, match=r"^model\.lrMinRate: `lrMinRate` == 0\.1, must be < learningRate"):
        load_config(path, ["model.lrMinRate=0.1"])
    with pytest.raises(ConfigError, match=r"^model\.lrDecay: `lrDecay` == 0\.0, must be > 0 with lrSchedule="):
        load_config(path, ["model.lrSchedule=inverse_sqrt", "model.lrDecay=0"])
    with pytest.raises(ConfigError, match=r"^search\.space: `space`\['lrSchedule'\]\.choice\[0\]: `lrSchedule` =="):
        load_config(write("search:\n  space:\n    lrSchedule: {choice: [cyclic]}\n"))


def test_weight_col_is_a_model_key(write):
    assert load_config(write("model:\n  weightCol: w\n"))["model"]["weightCol"] == "w"
    assert "weightCol" not in load_config(write("model:\n  epochs: 2\n"))["model"]  # unweighted by default


def test_required_companions_and_file_errors(write, tmp_path):
    with pytest.raises(ConfigError, match=r"^data\.path: required when data\.source is 'parquet'"):
        load_config(write("data:\n  source: parquet\n"))
    with pytest.raises(ConfigError, match=r"^data\.table: required"):
        validate({"data": {"source": "table"}})
    with pytest.raises(ConfigError, match="no such file"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write("model: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping of sections, found list"):
        load_config(write("- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(write("model: {}\n"), ["epochs"])


def test_search_space_is_checked_at_load(write):
    with pytest.raises(ConfigError, match=r"^search\.space: .*'learningrate' is not a searchable"):
        load_config(write("search:\n  space:\n    learningrate: {uniform: [0, 1]}\n"))


def test_image_params_and_their_key_paths(write):
    config = load_config(write("model:\n  layers: fashion_cnn\n  inputShape: [28, 28, 1]\n"
                               "  kernelInitializer: HE_Normal\n"
                               "  augmentation:\n    - {type: shift, factor: 0.1}\n    - {type: cutout, size: 8}\n"))
    assert config["model"]["inputShape"] == [28, 28, 1]
    assert config["model"]["kernelInitializer"] == "he_normal"
    assert config["model"]["augmentation"] == [{"type": "shift", "factor": 0.1}, {"type": "cutout", "size": 8}]
    path = write("model:\n  inputShape: [8, 8, 1]\n")
    for override, match in [
        ("model.augmentation=[{type: flip}, {type: zoom, factor: 2}]",
         r"^model\.augmentation\[1\]\.factor: `augmentation\[1\]\.factor` == 2, must be a number in \(0, 1\)$"),
        ("model.augmentation=[{type: spin}]", r"^model\.augmentation\[0\]\.type: `augmentation\[0\]\.type` == 'spin'"),
        ("model.augmentation=[{type: cutout, size: 9}]",
         r"^model\.augmentation\[0\]\.size: `augmentation\[0\]\.size` == 9, must be <= 8"),
        ("model.inputShape=[0]", r"^model\.inputShape: `inputShape` == \[0\], must be a list"),
        ("model.kernelInitializer=zeros", r"^model\.kernelInitializer: `kernelInitializer` == 'zeros'"),
        ("model.layers=fashion_cnn", None),
    ]:
        if match is None:
            assert load_config(path, [override])["model"]["layers"] == "fashion_cnn"
            continue
        with pytest.raises(ConfigError, match=match):
            load_config(path, [override])
    with pytest.raises(ConfigError, match=r"^model\.augmentation: `augmentation` needs an image `inputShape`"):
        load_config(write("model:\n  augmentation: [{type: flip}]\n"))
    with pytest.raises(ConfigError, match=r"^model\.layers: `layers` == 'fashion_cnn' needs an image `inputShape`"):
        load_config(write("model:\n  preset: fashion_cnn\n"))


def test_cnn_search_config_parses_and_its_space_samples():
    from hyperopt.pyll import stochastic

    from deepflash.tuning.hyperopt.space import to_hyperopt
    from deepflash.tuning.space import to_params

    config = load_config("conf/fashion_mnist_cnn_search.yaml")
    assert config["model"]["layers"] == "fashion_cnn3" and config["model"]["inputShape"] == [28, 28, 1]
    assert config["search"]["trialFraction"] == 0.25
    # the refit runs the whole cosine schedule: no plateau cuts, no early stop
    assert config["search"]["refitParams"] == {"epochs": 35, "earlyStoppingPatience": 0, "reduceLrPatience": 0}
    assert config["model"]["lrSchedule"] == "cosine"
    space = config["search"]["space"]
    assert {"augmentation", "kernelInitializer", "l2"} <= set(space)
    assert all(space["augmentation"]["choice"])  # every candidate is augmented
    draw = stochastic.sample(to_hyperopt(space))
    params = to_params(draw, config["model"]["layers"])
    assert isinstance(params["augmentation"], list) and isinstance(params["layers"], list)


def test_json_configs_load_as_their_yaml_twins(tmp_path):
    """Tab-indented JSON (which PyYAML alone rejects) and exponent floats (`1e-05`, a string to YAML 1.1)."""
    import glob
    import json

    import yaml

    for path in glob.glob("conf/*.yaml"):
        raw = yaml.safe_load(open(path))
        twin = tmp_path / (path.split("/")[-1][:-5] + ".json")
        twin.write_text(json.dumps(raw, indent="\t"))
        assert load_config(str(twin)) == load_config(path), path
    raw["model"]["learningRate"] = 2e-05
    (tmp_path / "exp.json").write_text(json.dumps(raw))
    assert '"learningRate": 2e-05' in (tmp_path / "exp.json").read_text()
    assert load_config(str(tmp_path / "exp.json"))["model"]["learningRate"] == 2e-05


def test_json_config_errors_name_the_key_or_the_line(tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"model": {"optimizer": "adamm"}}')
    with pytest.raises(ConfigError, match=r"^model\.optimizer: `optimizer` == 'adamm', must be one of"):
        load_config(str(path))
    with pytest.raises(ConfigError, match=r"^model\.epochs: "):
        load_config(str(path), ["model.optimizer=adam", "model.epochs=0"])
    path.write_text('{"model": {"epochs": 3,}}')
    with pytest.raises(ConfigError, match=r"job\.json: not valid JSON: .*line 1 column 24"):
        load_config(str(path))
    path.write_text('[{"model": {}}]')
    with pytest.raises(ConfigError, match="expected a mapping of sections, found list"):
        load_config(str(path))


def test_overrides_on_a_json_config_parse_as_yaml_with_exponent_floats(tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"model": {"epochs": 3, "learningRate": 0.1}}')
    config = load_config(str(path), ["model.learningRate=1e-3", "model.epochs=7",
                                     "model.layers=[{type: dense, units: 4}]", "tracking.enabled=false"])
    assert config["model"]["learningRate"] == 0.001 and config["model"]["epochs"] == 7
    assert config["model"]["layers"] == [{"type": "dense", "units": 4}] and config["tracking"] == {"enabled": False}
    assert apply_overrides({}, ["a.b=-2.5E+2", "a.c=1_000", "a.d=v1e3"]) == {"a": {"b": -250.0, "c": 1000, "d": "v1e3"}}


@pytest.mark.parametrize("url", ["sc://localhost:15002", "sc://spark-connect.example.com",
                                 "sc://host:443/;use_ssl=true;token=abc", "local", "local[2]", "local[*]"])
def test_spark_remote_takes_connect_urls(write, url):
    path = write("model:\n  epochs: 2\n")
    assert load_config(path, [f"spark.remote={url}"])["spark"]["remote"] == url
