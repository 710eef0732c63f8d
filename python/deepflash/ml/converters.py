"""Param converters shared by every stage: each turns a bad value into an error that names the Param,
says what was expected and what was found, e.g. ```epochs` == -1, must be >= 1``.

``make_param`` declares a Param with one of them; ``add_accessors`` generates a stage's
``getX``/``setX`` pairs. A stage declares its Params as a table (:mod:`deepflash.ml.param_table`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from pyspark.ml.param import Param, Params


def _fmt(value: Any) -> str:
    return repr(value)


def to_number(name: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
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


def to_str(name: str, *, lower: bool = False) -> Callable[[Any], str]:
    """A converter: the value must be a string; ``lower`` returns it in lower case."""

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"`{name}` == {_fmt(value)}, must be a string, found {type(value).__name__}")
        return value.lower() if lower else value

    return convert


RUN_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
RUN_ID_MAX = 128


def to_run_id(value: Any) -> str:
    """The ``runId`` converter: a non-empty name of safe characters that stays one directory of the
    store's ``runs/`` (no path separator, not ``.`` or ``..``, at most :data:`RUN_ID_MAX` long)."""
    if not isinstance(value, str):
        raise TypeError(f"`runId` == {_fmt(value)}, must be a string, found {type(value).__name__}")
    if not value:
        raise ValueError("`runId` == '', must be a non-empty name (leave runId unset for a run that is not resumed)")
    if value in (".", "..") or ".." in value:
        raise ValueError(f"`runId` == {value!r}, must not contain '..': it names one directory under the store's runs/")
    bad = sorted(set(value) - RUN_ID_CHARS)
    if bad:
        raise ValueError(f"`runId` == {value!r}, must hold only letters, digits, '.', '_' and '-', found "
                         f"{', '.join(repr(c) for c in bad)}")
    if len(value) > RUN_ID_MAX:
        raise ValueError(f"`runId` has {len(value)} characters, must have at most {RUN_ID_MAX}")
    return value


def to_lower(name: str) -> Callable[[Any], str]:
    """A converter: the value must be a string, returned in lower case."""
    return to_str(name, lower=True)


def to_choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    """A converter: the value must be one of ``choices`` (lower case), in any case."""
    as_lower = to_lower(name)

    def convert(value: Any) -> str:
        lowered = as_lower(value)
        if lowered not in choices:
            raise ValueError(f"`{name}` == {value!r}, must be one of: {', '.join(choices)}")
        return lowered

    return convert


def to_str_list(name: str) -> Callable[[Any], list[str]]:
    def convert(value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"`{name}` == {_fmt(value)}, must be a list of strings")
        return list(value)

    return convert


def to_epoch_list(name: str) -> Callable[[Any], list[int]]:
    """A list of integers >= 1 (integral floats accepted); empty means unset."""

    def convert(value: Any) -> list[int]:
        if isinstance(value, (list, tuple)):
            items = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
            if all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items):
                return items
        raise ValueError(f"`{name}` == {_fmt(value)}, must be a list of integers >= 1 (epochs per stage), or []")

    return convert


def to_json_dict(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"must be a dict, found {type(value).__name__}")
    return json.loads(json.dumps(value))


def make_param(name: str, doc: str, converter: Callable[[Any], Any]) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


def _capitalize(name: str) -> str:
    return name[0].upper() + name[1:]


def _accessor_pair(name: str) -> tuple[Callable, Callable]:
    """The getter and the chaining setter of the Param ``name``."""

    def get(self):
        return self.getOrDefault(getattr(self, name))

    def set_(self, value):
        return self._set(**{name: value})

    get.__doc__ = f"Gets the value of `{name}` or its default."
    set_.__doc__ = f"Sets `{name}`; returns self."
    return get, set_


def add_accessors(cls: type, names: Sequence[str], setters: Sequence[str] | None = None) -> type:
    """Adds ``getX`` for each Param name, and ``setX`` (returning ``self``) for those in ``setters``.

    Args:
        cls: the stage class.
        names: Params that get a getter.
        setters: Params that also get a setter; None means all of ``names``. A fitted Model passes
            only its transform-time Params, as pyspark Models do: setting ``epochs`` on a trained
            model would change nothing, and setting ``outputKind`` would break it.

    Generated rather than hand-written so that dozens of Params cannot drift into slightly
    different accessor pairs.

    Example:
        >>> add_accessors(KerasModel, ["featuresCol", "epochs"], setters=["featuresCol"])
    """
    settable = set(names if setters is None else setters)
    for name in names:
        getter, setter = "get" + _capitalize(name), "set" + _capitalize(name)
        get, set_ = _accessor_pair(name)
        if getter not in cls.__dict__:
            get.__name__ = getter
            setattr(cls, getter, get)
        if name in settable and setter not in cls.__dict__:
            set_.__name__ = setter
            setattr(cls, setter, set_)
    return cls

