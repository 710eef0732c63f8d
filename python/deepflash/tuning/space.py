"""Search spaces: the YAML-friendly dict form, its checks, a sample -> estimator Param values, and
the narrowed space of a refine stage. Each engine translates the dict form itself:
:mod:`deepflash.tuning.hyperopt.space` (hyperopt expressions, the grid) and
:mod:`deepflash.tuning.optuna.space` (``suggest_*`` calls, the GridSampler's grid).

A dimension is ``{"<kind>": args}`` with kind one of ``uniform [lo, hi]``, ``loguniform [lo, hi]``
(sampled on a log scale), ``quniform [lo, hi, q]``, ``qloguniform [lo, hi, q]``, ``choice [...]`` and
``randint [lo, hi]``; or ``{"architecture": {...}}`` for ``layers``; or a raw ``hyperopt.hp``
expression. Names are estimator Params, plus ``dropout``, which sets the rate of every dropout
layer of the network, and ``l1`` and ``l2``, which set the kernel regularization of every dense
and conv layer. ``augmentation`` and ``kernelInitializer`` are ``choice`` dimensions, e.g.
``{"augmentation": {"choice": [[], [{"type": "shift", "factor": 0.1}]]}}`` (off, or a shift).
"""
from __future__ import annotations

import copy
import json
import math
from typing import Any

# Params a trial may change; the others (columns, split, seed, store) define the data, which is
# materialized once for the whole search.
SEARCHABLE = ("layers", "optimizer", "learningRate", "momentum", "nesterov", "loss", "batchSize", "epochs",
              "earlyStoppingPatience", "reduceLrPatience", "reduceLrFactor", "lrSchedule", "lrDecay", "lrStepEpochs",
              "lrStepFactor", "lrWarmupEpochs", "lrMinRate", "scaleLearningRate", "augmentation", "kernelInitializer",
              "dropout", "l1", "l2", "trainingMode", "cascadeGrowth", "cascadeFineTuneRate", "kerasBackend")
INTEGER_PARAMS = ("batchSize", "epochs", "earlyStoppingPatience", "reduceLrPatience", "lrStepEpochs", "lrWarmupEpochs")
# Choices of these Params go through the Param's converter when the space is checked, so that a
# misspelt schedule fails the search before it starts rather than every trial that picks it.
CHECKED_CHOICES = ("lrSchedule", "augmentation", "kernelInitializer", "trainingMode", "kerasBackend")
# Params whose values are not numbers on a scale: only a `choice` can pick them.
CHOICE_ONLY = ("augmentation", "kernelInitializer", "trainingMode")
# Layer types whose kernel the `l1` and `l2` dimensions regularize.
REGULARIZED = ("dense", "conv1d", "conv2d", "conv3d")
KINDS = ("uniform", "loguniform", "quniform", "qloguniform", "choice", "randint", "architecture")
ARCHITECTURE_KEYS = {"depth": [1, 3], "units": [64], "activation": ["relu"], "dropout": [0.0, 0.0],
                     "batchnorm": [False]}


def is_hyperopt_expression(value: Any) -> bool:
    """Whether a dimension is a raw ``hyperopt.hp`` expression (not the dict form)."""
    from hyperopt.pyll import Apply

    return isinstance(value, Apply)


def check_space(space: Any) -> dict:
    """Validates a space dict: names, kinds and arguments. Raises ValueError naming the dimension."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"`space` must be a non-empty dict of dimensions, found {space!r}")
    for name, dim in space.items():
        if name not in SEARCHABLE:
            raise ValueError(f"`space` dimension {name!r} is not a searchable KerasEstimator Param; valid names: "
                             f"{', '.join(SEARCHABLE)}")
        if is_hyperopt_expression(dim):
            continue
        if not isinstance(dim, dict) or len(dim) != 1:
            raise ValueError(f"`space`[{name!r}] must be one {{kind: args}} pair with kind one of {', '.join(KINDS)}, "
                             f"or a hyperopt hp expression; found {dim!r}")
        (kind, args), = dim.items()
        where = f"`space`[{name!r}].{kind}"
        if kind not in KINDS:
            raise ValueError(f"`space`[{name!r}]: unknown kind {kind!r}, must be one of: {', '.join(KINDS)}")
        if name in CHOICE_ONLY and kind != "choice":
            raise ValueError(f"{where}: `{name}` can only be a choice dimension, e.g. {{'choice': [...]}}")
        if kind == "architecture":
            if name != "layers":
                raise ValueError(f"{where}: only `layers` can be an architecture dimension")
            if not isinstance(args, dict) or set(args) - set(ARCHITECTURE_KEYS):
                raise ValueError(f"{where}: expected a dict with keys from {', '.join(ARCHITECTURE_KEYS)}, "
                                 f"found {args!r}")
            depth = args.get("depth", ARCHITECTURE_KEYS["depth"])
            if not (isinstance(depth, list) and len(depth) == 2 and all(isinstance(d, int) for d in depth)
                    and 1 <= depth[0] <= depth[1]):
                raise ValueError(f"{where}.depth == {depth!r}, must be [min, max] with 1 <= min <= max")
            dropout = args.get("dropout", ARCHITECTURE_KEYS["dropout"])
            if not (isinstance(dropout, list) and len(dropout) == 2 and 0 <= dropout[0] <= dropout[1] < 1):
                raise ValueError(f"{where}.dropout == {dropout!r}, must be [low, high] within [0, 1)")
            for key in ("units", "activation", "batchnorm"):
                if not isinstance(args.get(key, [0]), list) or not args.get(key, [0]):
                    raise ValueError(f"{where}.{key} must be a non-empty list, found {args.get(key)!r}")
        elif kind == "choice":
            if not isinstance(args, list) or not args:
                raise ValueError(f"{where} must be a non-empty list, found {args!r}")
            if name in CHECKED_CHOICES:
                convert = _converter(name)
                for i, value in enumerate(args):
                    try:
                        convert(value)
                    except (TypeError, ValueError) as e:
                        raise ValueError(f"{where}[{i}]: {e}") from None
        else:
            n = 3 if kind.startswith("q") else 2
            if not isinstance(args, list) or len(args) != n or not all(isinstance(a, (int, float)) for a in args):
                raise ValueError(f"{where} must be a list of {n} numbers, found {args!r}")
            if args[0] >= args[1]:
                raise ValueError(f"{where} == {args!r}: low must be below high")
            if "log" in kind and args[0] <= 0:
                raise ValueError(f"{where} == {args!r}: a log scale needs low > 0")
    return space


def _converter(name: str):
    from deepflash.ml.params import KerasParams

    return getattr(KerasParams, name).typeConverter


def architecture_layers(spec: list[dict]) -> list[dict]:
    """The ``layers`` list for one sampled architecture."""
    layers: list[dict] = []
    for layer in spec:
        layers.append({"type": "dense", "units": int(layer["units"]), "activation": layer["activation"]})
        if layer.get("batchnorm"):
            layers.append({"type": "batchnorm"})
        if layer.get("dropout", 0) > 0:
            layers.append({"type": "dropout", "rate": float(layer["dropout"])})
    return layers


def apply_dropout(layers: list[dict], rate: float) -> list[dict]:
    """Sets every dropout layer's rate; adds one after each dense layer when there are none."""
    layers = copy.deepcopy(layers)
    if any(layer.get("type") == "dropout" for layer in layers):
        for layer in layers:
            if layer.get("type") == "dropout":
                layer["rate"] = rate
        return layers
    out = []
    for layer in layers:
        out.append(layer)
        if layer.get("type") == "dense":
            out.append({"type": "dropout", "rate": rate})
    return out


def apply_regularization(layers: list[dict], key: str, value: float) -> list[dict]:
    """Sets ``key`` (``l1`` or ``l2``) on every dense and conv layer."""
    layers = copy.deepcopy(layers)
    for layer in layers:
        if str(layer.get("type", "")).lower() in REGULARIZED:
            layer[key] = value
    return layers


def to_params(sample: dict, base_layers: Any) -> dict:
    """Estimator Param values for one hyperopt sample (architecture and dropout resolved)."""
    from deepflash.networks import resolve_layers

    params = dict(sample)
    layers = params.pop("layers", None)
    if isinstance(layers, dict) and "architecture" in layers:
        layers = architecture_layers(layers["architecture"])
    if layers is None:
        layers = base_layers
    dropout = params.pop("dropout", None)
    if dropout is not None:
        layers = apply_dropout(resolve_layers(layers), float(dropout))
    for key in ("l1", "l2"):
        value = params.pop(key, None)
        if value is not None:
            layers = apply_regularization(resolve_layers(layers), key, float(value))
    if layers is not base_layers or "layers" in sample:
        params["layers"] = layers
    for name in INTEGER_PARAMS:
        if name in params:
            params[name] = int(round(float(params[name])))
    for name in CHECKED_CHOICES:
        if name in params:
            params[name] = _converter(name)(plain(params[name]))
    for name, value in list(params.items()):
        if hasattr(value, "item"):   # numpy scalars from hyperopt
            params[name] = value.item()
    # hyperopt hands nested choices back as tuples; Params and saved models want plain JSON.
    return json.loads(json.dumps(params))


def plain(value: Any) -> Any:
    """hyperopt's tuples and numpy scalars as JSON lists and numbers (a sample as it is stored)."""
    return json.loads(json.dumps(value, default=lambda v: v.item()))


def raw_hyperopt_dimension(space: dict) -> str | None:
    """The first dimension of a checked space given as a raw hyperopt expression, or None."""
    return next((name for name, dim in check_space(space).items() if is_hyperopt_expression(dim)), None)


# refine: a narrowed numeric dimension spans the top trials' values plus this fraction of the
# original width on each side (on the log scale for log dimensions), within the original bounds.
REFINE_MARGIN = 0.1


def check_dict_form(space: dict, needed_by: str) -> dict:
    """Checks that every dimension of ``space`` has the dict form, which ``needed_by`` (named in the
    error) requires: a raw hyperopt expression can be neither translated nor narrowed."""
    name = raw_hyperopt_dimension(space)
    if name is not None:
        raise ValueError(f"`space`[{name!r}] is a raw hyperopt expression; {needed_by} needs the dict form, "
                         "e.g. {'loguniform': [1e-4, 1e-1]}")
    return space


def check_refinable(space: dict) -> dict:
    """Checks that ``refine`` can narrow a space: the dict form only."""
    return check_dict_form(space, "`refine`")


def narrow(space: dict, samples: list[dict], margin: float = REFINE_MARGIN) -> dict:
    """The space around ``samples`` (the raw samples of the top trials, as :func:`suggest` and
    hyperopt draw them), for a second, finer search.

    - ``uniform`` and ``loguniform`` (and their ``q`` forms, bounds on the step): from the smallest to
      the largest sampled value, widened by ``margin`` of the dimension's width (its log width for
      log scales), within the original bounds; ``randint`` likewise on integers;
    - ``choice``: only the options that the samples picked, in their original order;
    - ``architecture``: the sampled depths, units, activations and batchnorm flags; the dropout
      range narrowed as a uniform dimension.

    Example:
        >>> narrow({"learningRate": {"loguniform": [1e-4, 1e-1]}, "optimizer": {"choice": ["adam", "sgd"]}},
        ...        [{"learningRate": 2e-3, "optimizer": "adam"}, {"learningRate": 5e-3, "optimizer": "adam"}])
        {'learningRate': {'loguniform': [0.0010..., 0.0099...]}, 'optimizer': {'choice': ['adam']}}
    """
    check_refinable(space)
    if not samples:
        raise ValueError("`refine` needs at least one successful trial to narrow the space around")
    out: dict[str, Any] = {}
    for name, dim in space.items():
        (kind, args), = dim.items()
        values = [s[name] for s in samples if name in s]
        if not values:
            out[name] = copy.deepcopy(dim)
        elif kind == "choice":
            picked = {_key(v) for v in values}
            out[name] = {"choice": [o for o in args if _key(o) in picked] or list(args)}
        elif kind == "architecture":
            out[name] = {"architecture": _narrow_architecture(args, [v["architecture"] for v in values], margin)}
        elif kind == "randint":
            low, high = _span([float(v) for v in values], args[0], args[1] - 1, margin, log=False)
            out[name] = {"randint": [math.floor(low), max(math.ceil(high), math.floor(low)) + 1]}
        else:
            log = "log" in kind
            low, high = _span([float(v) for v in values], args[0], args[1], margin, log)
            if kind.startswith("q"):
                low, high = _on_steps(low, high, args, log)
                out[name] = {kind: [low, high, args[2]]}
            else:
                out[name] = {kind: [low, high]}
    return check_space(out)


def _key(value: Any) -> str:
    return json.dumps(plain(value), sort_keys=True)


def _span(values: list[float], low: float, high: float, margin: float, log: bool) -> tuple[float, float]:
    """[min - margin * width, max + margin * width] of ``values`` within [low, high], on a log scale if ``log``."""
    f, inverse = (math.log, math.exp) if log else ((lambda v: v), (lambda v: v))
    lo, hi = f(low), f(high)
    width = hi - lo
    vs = [f(min(max(v, low), high)) for v in values]
    new_lo, new_hi = max(lo, min(vs) - margin * width), min(hi, max(vs) + margin * width)
    return (low if new_lo == lo else inverse(new_lo)), (high if new_hi == hi else inverse(new_hi))


def _on_steps(low: float, high: float, args: list, log: bool) -> tuple[float, float]:
    """Bounds of a ``q`` dimension moved out onto its steps (from ``low`` for quniform, from 0 for
    qloguniform, as the draws round), at least one step apart, within the original bounds."""
    lo0, hi0, q = args
    origin = 0.0 if log else lo0
    new_lo = max(lo0, origin + math.floor((low - origin) / q + 1e-9) * q)
    new_hi = min(hi0, origin + math.ceil((high - origin) / q - 1e-9) * q)
    if log:
        new_lo = max(new_lo, q) if q < hi0 else new_lo
    if new_hi - new_lo < q:
        new_hi = min(hi0, new_lo + q)
        new_lo = max(lo0, new_hi - q)
    return new_lo, new_hi


def _narrow_architecture(args: dict, layer_lists: list[list[dict]], margin: float) -> dict:
    a = {**ARCHITECTURE_KEYS, **args}
    layers = [layer for spec in layer_lists for layer in spec]
    depths = [len(spec) for spec in layer_lists]
    out = {"depth": [min(depths), max(depths)]}
    for key in ("units", "activation", "batchnorm"):
        picked = {_key(layer[key]) for layer in layers}
        out[key] = [o for o in a[key] if _key(o) in picked] or list(a[key])
    low, high = a["dropout"]
    if high > low:
        out["dropout"] = list(_span([float(layer["dropout"]) for layer in layers], low, high, margin, log=False))
    else:
        out["dropout"] = [low, high]
    return out
