"""Job configs: YAML or JSON sections, ``--set key.path=value`` overrides, and a schema checked before Spark starts.

Every error names the key path, what was expected and what was found, e.g.
``model.optimizer: `optimizer` == 'adamm', must be one of: sgd, ...``.

Sections:
    data      where the rows come from (digits | fashion_mnist | idx | parquet | table | sine) and how they
              split; ``sine`` is a generated series (``steps``, ``period``, ``noise``, ``seed``)
    model     KerasEstimator Params by name (``layers`` may be a preset name; ``preset`` is an alias)
    search    ``engine`` (hyperopt | optuna), then HyperoptSearch Params (space, algo, maxEvals, parallelism,
              metric, mode, ...) or OptunaSearch Params (space, sampler, pruner, storage, ...)
    study     the optimizer study's grid (presets, optimizers, learning rates, losses, batch sizes)
    sampling  MAE random sampling of one architecture: ``look_back``, ``architecture`` (units per layer,
              input to output) and :func:`deepflash.evolution.mae_random_sampling`'s settings
    tracking  MLflow: uri, experiment, registered_model, enabled, required (default true: a job whose
              tracking failed exits with an error once its outputs are in place)
    spark     master, conf, and remote (a Spark Connect URL, ``sc://host:port``; ``--remote`` sets it)
    evaluation  human_error (or Bayes error, for the bias/variance diagnosis), beta (F-beta)
    evolution EvolutionarySearch Params (problem, populationSize, generations, bounds, ...) for ``evolve``
    output    dir
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from deepflash.evolution.sampling import ACTIVATIONS as SAMPLING_ACTIVATIONS
from deepflash.evolution.sampling import INITS as SAMPLING_INITS
from deepflash.evolution.sampling import LAYER_TYPES as SAMPLING_LAYER_TYPES

DATA_SOURCES = ("digits", "fashion_mnist", "idx", "parquet", "table", "sine")


class ConfigError(ValueError):
    """A config key is unknown or holds a value of the wrong type or range."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1), except that ``1e-3`` is a float, as in YAML 1.2 and JSON;
    YAML 1.1 reads it as a string unless written ``1.0e-3``."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def _yaml(text):
    return yaml.load(text, Loader=_Loader)


def _type(path: str, value: Any, types: tuple, what: str) -> Any:
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{path}: expected {what}, found bool {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"{path}: expected {what}, found {type(value).__name__} {value!r}")
    return value


def _string(path, value):
    return _type(path, value, (str,), "a string")


def _optional_string(path, value):
    return None if value is None else _string(path, value)


def _boolean(path, value):
    return _type(path, value, (bool,), "true or false")


def _integer(low: int | None = None):
    def check(path, value):
        _type(path, value, (int,), "an integer")
        if low is not None and value < low:
            raise ConfigError(f"{path}: expected an integer >= {low}, found {value}")
        return value

    return check


def _fraction(path, value):
    _type(path, value, (int, float), "a number")
    if not 0 < value < 1:
        raise ConfigError(f"{path}: expected a number in (0, 1), found {value}")
    return value


def _one_of(choices: tuple):
    def check(path, value):
        if value not in choices:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value

    return check


def _list_of(item: Callable, non_empty: bool = True):
    def check(path, value):
        _type(path, value, (list,), "a list")
        if non_empty and not value:
            raise ConfigError(f"{path}: expected a non-empty list, found []")
        return [item(f"{path}[{i}]", v) for i, v in enumerate(value)]

    return check


def _rate(path, value):
    _type(path, value, (int, float), "a number")
    if not 0 <= value <= 1:
        raise ConfigError(f"{path}: expected an error rate in [0, 1], found {value}")
    return value


def _positive(path, value):
    _type(path, value, (int, float), "a number")
    if value <= 0:
        raise ConfigError(f"{path}: expected a number > 0, found {value}")
    return value


def _features(path, value):
    """A Vector/array column name, or a list of numeric columns to assemble."""
    if isinstance(value, list):
        return _list_of(_string)(path, value)
    return _type(path, value, (str,), "a column name or a list of column names")


def _non_negative(path, value):
    _type(path, value, (int, float), "a number")
    if value < 0:
        raise ConfigError(f"{path}: expected a number >= 0, found {value}")
    return value


def _architecture(path, value):
    """Units per layer, input to output: at least an input, one hidden layer and one output unit."""
    units = _list_of(_integer(1))(path, value)
    if len(units) < 3 or units[-1] != 1:
        raise ConfigError(f"{path}: expected units per layer from input to output, with at least one hidden "
                          f"layer and 1 output unit (e.g. [1, 2, 2, 1]), found {units}")
    return units


def _mapping(path, value):
    return _type(path, value, (dict,), "a mapping")


def _number(path, value):
    return _type(path, value, (int, float), "a number")


def _study_optimizer(path, value):
    from deepflash.networks.optimizers import check_optimizer

    try:
        return check_optimizer(_string(path, value))
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def _study_loss(path, value):
    from deepflash.networks.losses import check_loss

    try:
        return check_loss(_string(path, value))
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


_REMOTE = re.compile(r"^(sc://[^/:\s]+(:\d+)?(/.*)?|local(\[(\*|\d+)(,\s*\d+)?\])?)$")


def remote_url(path: str, value: Any) -> str:
    """A Spark Connect URL: ``sc://host[:port][/;param=value...]``, or ``local[n]`` for a
    Connect server that pyspark starts in this process. ``path`` names the key or option."""
    _type(path, value, (str,), "a Spark Connect URL")
    if not _REMOTE.match(value):
        raise ConfigError(f"{path}: expected a Spark Connect URL, sc://host:port (e.g. sc://localhost:15002) "
                          f"or local[n], found {value!r}")
    return value


def _preset(path, value):
    from deepflash.networks.presets import PRESETS

    return _one_of(tuple(PRESETS))(path, _string(path, value))


SCHEMA: dict[str, dict[str, Callable]] = {
    "data": {"source": _one_of(DATA_SOURCES), "path": _string, "table": _string, "test_fraction": _fraction,
             "seed": _integer(), "limit": _integer(1), "features": _features, "label": _string,
             "steps": _integer(2), "period": _positive, "noise": _non_negative},
    "tracking": {"enabled": _boolean, "uri": _optional_string, "experiment": _string,
                 "registered_model": _optional_string, "required": _boolean},
    "spark": {"master": _string, "conf": _mapping, "remote": remote_url},
    "output": {"dir": _string},
    "evaluation": {"human_error": _rate, "beta": _positive},
    "study": {"presets": _list_of(_preset), "optimizers": _list_of(_study_optimizer),
              "learning_rates": _list_of(_number, non_empty=False), "losses": _list_of(_study_loss, non_empty=False),
              "batch_sizes": _list_of(_integer(1), non_empty=False), "batch_size": _integer(1),
              "learning_rate_preset": _preset, "parallelism": _integer(0), "epochs": _integer(1)},
    "sampling": {"look_back": _integer(1), "architecture": _architecture, "samples": _integer(1),
                 "init": _one_of(SAMPLING_INITS), "init_scale": _positive, "threshold": _positive,
                 "threshold_fraction": _positive, "layer_type": _one_of(SAMPLING_LAYER_TYPES),
                 "activation": _one_of(SAMPLING_ACTIVATIONS), "output_activation": _one_of(SAMPLING_ACTIVATIONS),
                 "batch": _integer(1), "seed": _integer(0)},
}
SECTIONS = ("data", "model", "search", "study", "sampling", "evolution", "evaluation", "tracking", "spark", "output")


def _param_names(cls) -> list[str]:
    return sorted(p.name for p in cls().params)


def _key_path(section: str, message: str, keys: Any, fallback: str) -> str:
    """The key path an error message is about: it starts by naming a Param, perhaps with an index
    and a key into it (`augmentation[1].factor`); ``fallback`` when it names none of ``keys``."""
    named = re.match(r"`(\w+)((?:\[\d+\])?(?:\.\w+)?)`", message)
    if named and named.group(1) in keys:
        return f"{section}.{named.group(1)}{named.group(2)}"
    return fallback


def _check_params(section: str, values: Any, cls, skip: tuple = ()) -> dict:
    """Each key must be a Param of ``cls``; each value goes through that Param's converter."""
    _mapping(section, values)
    instance = cls()
    valid = _param_names(cls)
    out = {}
    for key, value in values.items():
        if key in skip:
            out[key] = value
            continue
        if not instance.hasParam(str(key)):
            raise ConfigError(f"{section}.{key}: unknown key; valid keys are: {', '.join(valid + list(skip))}")
        param = instance.getParam(key)
        try:
            out[key] = param.typeConverter(value) if value is not None else value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{_key_path(section, str(e), (key,), f'{section}.{key}')}: {e}") from None
    return out


def _check_model(values: Any) -> dict:
    from deepflash.ml.estimator import KerasEstimator
    from deepflash.networks.layers import validate_layers
    from deepflash.networks.presets import resolve_layers

    values = dict(_mapping("model", values))
    if "preset" in values:
        if "layers" in values:
            raise ConfigError("model.preset: give either `preset` or `layers`, found both")
        values["layers"] = _preset("model.preset", values.pop("preset"))
    checked = _check_params("model", values, KerasEstimator)
    if "layers" in checked:
        try:
            validate_layers(resolve_layers(checked["layers"]))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.layers: {e}") from None
    try:  # cross-param rules (loss against task, monitor against validation)
        KerasEstimator(**checked).validateParams()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{_key_path('model', str(e), checked, 'model')}: {e}") from None
    return checked


SEARCH_ENGINES = ("hyperopt", "optuna")


def search_class(engine: str):
    """The search stage of an engine: HyperoptSearch or OptunaSearch."""
    from deepflash.tuning.hyperopt.search import HyperoptSearch
    from deepflash.tuning.optuna.search import OptunaSearch

    return {"hyperopt": HyperoptSearch, "optuna": OptunaSearch}[engine]


def _check_search(values: Any) -> dict:
    """``engine`` (hyperopt, the default, or optuna) picks the stage whose Params the other keys are."""
    values = dict(_mapping("search", values))
    engine = values.get("engine", "hyperopt")
    if engine not in SEARCH_ENGINES:
        raise ConfigError(f"search.engine: expected one of {', '.join(SEARCH_ENGINES)}, found {engine!r}")
    return _check_params("search", values, search_class(engine), skip=("engine",))


def _check_evolution(values: Any) -> dict:
    """EvolutionarySearch Params, each through its converter, then the bounds and GA settings together."""
    from deepflash.evolution import EvolutionarySearch

    checked = _check_params("evolution", values, EvolutionarySearch)
    search = EvolutionarySearch(**{k: v for k, v in checked.items() if v is not None})
    try:
        search.space()
        search.algorithm()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{_key_path('evolution', str(e), checked, 'evolution')}: {e}") from None
    return checked


def validate(config: Any, source: str = "config") -> dict:
    """Checks every section and key; returns the config with Param values converted."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, found {type(config).__name__}")
    out: dict[str, Any] = {}
    for section, values in config.items():
        if section not in SECTIONS:
            raise ConfigError(f"{section}: unknown section; valid sections are: {', '.join(SECTIONS)}")
        if values is None:
            values = {}
        if section == "model":
            out[section] = _check_model(values)
        elif section == "search":
            out[section] = _check_search(values)
        elif section == "evolution":
            out[section] = _check_evolution(values)
        else:
            _mapping(section, values)
            schema = SCHEMA[section]
            for key in values:
                if key not in schema:
                    raise ConfigError(f"{section}.{key}: unknown key; valid keys are: {', '.join(schema)}")
            out[section] = {key: schema[key](f"{section}.{key}", value) for key, value in values.items()}
    data = out.get("data", {})
    if data.get("source") in ("idx", "parquet") and "path" not in data:
        raise ConfigError(f"data.path: required when data.source is {data['source']!r}")
    if data.get("source") == "table" and "table" not in data:
        raise ConfigError("data.table: required when data.source is 'table'")
    architecture = out.get("sampling", {}).get("architecture")
    if architecture and data.get("source") == "sine" and architecture[0] != 1:
        raise ConfigError(f"sampling.architecture: starts with the input's units, 1 for the sine series, "
                          f"found {architecture}")
    return out


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """``key.path=value`` overrides; values parse as YAML (``5`` is an int, ``[1, 2]`` a list)."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        node = config
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        node[parts[-1]] = _yaml(text)
    return config


def load_config(path: str, overrides: list[str] = ()) -> dict:
    """Reads a YAML config (JSON when ``path`` ends in ``.json``), applies overrides and validates it
    (before any Spark work).

    Args:
        path: the config file, e.g. ``conf/default.yaml`` or ``conf/sine_evolution.json``.
        overrides: ``key.path=value`` items; values parse as YAML, in a JSON config too.

    Example:
        config = load_config("conf/default.yaml", ["model.epochs=5", "model.learningRate=1e-3"])
    """
    is_json = path.lower().endswith(".json")
    try:
        with open(path) as f:
            # A JSON file is read as JSON: PyYAML (YAML 1.1) rejects tab indentation that JSON allows.
            config = (json.load(f) if is_json else _yaml(f)) or {}
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, found {type(config).__name__}")
    return validate(apply_overrides(config, list(overrides)), path)
