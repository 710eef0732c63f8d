"""The dict space as hyperopt takes it: ``hp`` expressions (:func:`to_hyperopt`) and the grid over
its ``choice`` dimensions (:func:`grid_points`, for ``algo="grid"``)."""
from __future__ import annotations

import itertools
import math
import random
from typing import Any

from deepflash.tuning.space import ARCHITECTURE_KEYS, check_space, is_hyperopt_expression


def to_hyperopt(space: dict) -> dict:
    """The hyperopt space for a checked space dict; labels are the dimension names."""
    from hyperopt import hp

    out: dict[str, Any] = {}
    for name, dim in check_space(space).items():
        if is_hyperopt_expression(dim):
            out[name] = dim
            continue
        (kind, args), = dim.items()
        if kind == "uniform":
            out[name] = hp.uniform(name, *args)
        elif kind == "loguniform":
            out[name] = hp.loguniform(name, math.log(args[0]), math.log(args[1]))
        elif kind == "quniform":
            out[name] = hp.quniform(name, *args)
        elif kind == "qloguniform":
            out[name] = hp.qloguniform(name, math.log(args[0]), math.log(args[1]), args[2])
        elif kind == "randint":
            out[name] = hp.randint(name, args[0], args[1])
        elif kind == "choice":
            out[name] = hp.choice(name, args)
        else:
            out[name] = _architecture(name, args)
    return out


def _architecture(name: str, args: dict):
    """A conditional space: the depth first, then units/activation/dropout/batchnorm per layer."""
    from hyperopt import hp

    a = {**ARCHITECTURE_KEYS, **args}
    lo, hi = a["depth"]
    options = []
    for depth in range(lo, hi + 1):
        layers = []
        for i in range(depth):
            prefix = f"{name}.d{depth}.l{i}"
            layers.append({
                "units": hp.choice(f"{prefix}.units", a["units"]),
                "activation": hp.choice(f"{prefix}.activation", a["activation"]),
                "dropout": hp.uniform(f"{prefix}.dropout", *a["dropout"]) if a["dropout"][1] > a["dropout"][0]
                else a["dropout"][0],
                "batchnorm": hp.choice(f"{prefix}.batchnorm", a["batchnorm"]),
            })
        options.append({"architecture": layers})
    return hp.choice(f"{name}.depth", options)


def grid_points(space: dict, sample: float | None = None, seed: int = 0) -> list[dict]:
    """Every combination of the ``choice`` dimensions, or a random ``sample`` fraction of them.

    Raises:
        ValueError: when a dimension is not a ``choice`` (a grid needs finite dimensions).
    """
    check_space(space)
    names = list(space)
    values = []
    for name in names:
        dim = space[name]
        if is_hyperopt_expression(dim) or next(iter(dim)) != "choice":
            raise ValueError(f"algo='grid' needs `choice` dimensions only; `space`[{name!r}] is "
                             f"{dim if is_hyperopt_expression(dim) else next(iter(dim))!r}")
        values.append(dim["choice"])
    points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    if sample is not None:
        if not 0 < sample <= 1:
            raise ValueError(f"`gridSample` == {sample!r}, must be in (0, 1]")
        k = max(1, round(sample * len(points)))
        points = random.Random(seed).sample(points, k)
    return points
