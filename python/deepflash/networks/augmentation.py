"""Train-time image augmentation: a JSON list of steps -> Keras preprocessing layers.

A step is a dict with a ``type`` and that type's keys, e.g. ``{"type": "rotate", "factor": 0.05}``:

    rotate  ``factor`` in (0, 0.5]: a random angle in [-factor, factor] x 2π (RandomRotation)
    zoom    ``factor`` in (0, 1): zoom in or out by up to that fraction (RandomZoom)
    shift   ``factor`` in (0, 1): translate by up to that fraction of height and width (RandomTranslation)
    flip    ``mode``: horizontal (default), vertical or horizontal_and_vertical (RandomFlip)
    cutout  ``size`` >= 1: zero one random size x size patch per image
            (:class:`~deepflash.networks.image_layers.Cutout`)

Pixels that rotate, zoom and shift bring in are filled with 0 (``fill_mode="constant"``), the
background of MNIST-style images. Every layer is active only when Keras calls it with
``training=True`` (``model.fit``); ``predict``, ``model(x)`` and ``KerasModel.transform`` see the
images as they are. The checks here need no TensorFlow; the layers are built by :func:`augmentation_block`.
"""
from __future__ import annotations

import copy
from typing import Any

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
# type -> {key: default}; None means required.
AUGMENTATIONS: dict[str, dict[str, Any]] = {
    "rotate": {"factor": None},
    "zoom": {"factor": None},
    "shift": {"factor": None},
    "flip": {"mode": "horizontal"},
    "cutout": {"size": None},
}
# type -> (low, high, high is open): factors are open at 0 (0 would be no augmentation at all).
_FACTOR_RANGES = {"rotate": (0.0, 0.5, False), "zoom": (0.0, 1.0, True), "shift": (0.0, 1.0, True)}


def check_augmentation(steps: Any, name: str = "augmentation") -> list[dict]:
    """Checks each step on its own and returns a copy with defaults filled in and types lower-cased.

    Raises:
        TypeError, ValueError: naming ``augmentation[i].<key>``, what was expected and what was found.

    Example:
        >>> check_augmentation([{"type": "Flip"}])
        [{'type': 'flip', 'mode': 'horizontal'}]
    """
    if not isinstance(steps, (list, tuple)):
        raise TypeError(f"`{name}` == {steps!r}, must be a list of augmentation dicts, found {type(steps).__name__}")
    out = []
    for i, step in enumerate(steps):
        where = f"{name}[{i}]"
        if not isinstance(step, dict):
            raise TypeError(f"`{where}` == {step!r}, must be a dict with a `type`, found {type(step).__name__}")
        kind = step.get("type")
        if not isinstance(kind, str) or kind.lower() not in AUGMENTATIONS:
            raise ValueError(f"`{where}.type` == {kind!r}, must be one of: {', '.join(AUGMENTATIONS)}")
        kind = kind.lower()
        allowed = AUGMENTATIONS[kind]
        for key in step:
            if key != "type" and key not in allowed:
                raise ValueError(f"`{where}.{key}`: unknown key for type {kind!r}, valid keys are: "
                                 f"{', '.join(allowed)}")
        full: dict[str, Any] = {"type": kind}
        for key, default in allowed.items():
            if key not in step and default is None:
                raise ValueError(f"`{where}.{key}`: missing, required for type {kind!r}")
            full[key] = copy.deepcopy(step.get(key, default))
        if "factor" in full:
            low, high, high_open = _FACTOR_RANGES[kind]
            value = full["factor"]
            ok = not isinstance(value, bool) and isinstance(value, (int, float)) and low < value and \
                (value < high if high_open else value <= high)
            if not ok:
                raise ValueError(f"`{where}.factor` == {value!r}, must be a number in ({low:g}, {high:g}"
                                 f"{')' if high_open else ']'}")
            full["factor"] = float(value)
        if kind == "cutout":
            size = full["size"]
            if isinstance(size, float) and size.is_integer():
                size = int(size)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"`{where}.size` == {full['size']!r}, must be an integer >= 1")
            full["size"] = size
        if kind == "flip":
            mode = full["mode"]
            if not isinstance(mode, str) or mode.lower() not in FLIP_MODES:
                raise ValueError(f"`{where}.mode` == {mode!r}, must be one of: {', '.join(FLIP_MODES)}")
            full["mode"] = mode.lower()
        out.append(full)
    return out


def check_against_shape(steps: list[dict], input_shape: list[int] | None) -> None:
    """The checks that need ``inputShape``: augmentation works on images, and a cutout fits them.

    Raises:
        ValueError: naming ``augmentation`` (or ``augmentation[i].size``) and ``inputShape``.
    """
    if not steps:
        return
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(f"`augmentation` needs an image `inputShape` [height, width, channels], found "
                         f"{input_shape!r}; set inputShape, e.g. [28, 28, 1], or augmentation=[]")
    side = min(input_shape[0], input_shape[1])
    for i, step in enumerate(steps):
        if step["type"] == "cutout" and step["size"] > side:
            raise ValueError(f"`augmentation[{i}].size` == {step['size']}, must be <= {side}, the smaller side of "
                             f"`inputShape` {list(input_shape)}")


def augmentation_block(steps: list[dict], seed: int | None = None):
    """An :class:`~deepflash.networks.image_layers.Augmentation` layer named ``augmentation``.

    Args:
        steps: from :func:`check_augmentation`.
        seed: seeds each step's layer (``seed + i`` for step ``i``), for repeatable runs.
    """
    from deepflash.networks.image_layers import Augmentation

    return Augmentation(steps, seed=seed, name="augmentation")
