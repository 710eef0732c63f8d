"""A stage's Params as one table: each Param is declared once, as a :class:`ParamSpec`.

From a tuple of specs, :func:`declare_params` puts the ``Param`` class attributes on a Params class,
:func:`set_defaults` sets their defaults, :func:`keyword_params` makes ``__init__`` and ``setParams``
take the Params by keyword (checked against the table, with a signature generated from it so
``help()`` and IDEs list every Param with its default), and
:func:`~deepflash.ml.converters.add_accessors` adds the getters and setters by name.
"""
from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deepflash.ml.converters import make_param


class _Unset:
    """The default of a Param that has none (``isDefined`` is False until it is set)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class ParamSpec:
    """One Param of a stage.

    Args:
        name: the Param's name (camelCase, as pyspark's).
        doc: what ``explainParams`` shows.
        converter: turns a value into the Param's value, or raises an error naming the Param.
        default: the default value; :data:`UNSET` for none (``None`` is a default: the value None).
        fitted: set by ``fit`` on the fitted model only (what it learned), never by users.
        transform: a fitted model has a setter for it (a column its ``transform`` reads or writes).
        annotation: the type shown in the generated signature; by default the default's type.
    """

    name: str
    doc: str
    converter: Callable[[Any], Any]
    default: Any = UNSET
    fitted: bool = False
    transform: bool = False
    annotation: str | None = None

    def type_name(self) -> str:
        """The annotation of the keyword in a generated signature."""
        if self.annotation is not None:
            return self.annotation
        if self.default is UNSET or self.default is None:
            return "Any"
        return type(self.default).__name__


def names(specs: Iterable[ParamSpec]) -> tuple[str, ...]:
    """The specs' names, in table order."""
    return tuple(spec.name for spec in specs)


def declare_params(cls: type, specs: Iterable[ParamSpec]) -> type:
    """Sets one ``Param`` class attribute per spec on ``cls`` (replacing one a pyspark mixin declared,
    so the converter is the table's); returns ``cls``."""
    for spec in specs:
        setattr(cls, spec.name, make_param(spec.name, spec.doc, spec.converter))
    return cls


def set_defaults(stage: Any, specs: Iterable[ParamSpec]) -> None:
    """Sets each spec's default on ``stage`` (a Params instance), skipping those without one."""
    stage._setDefault(**{spec.name: spec.default for spec in specs if spec.default is not UNSET})


def check_param_names(stage: str, given: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Raises TypeError naming the first of ``given`` that is not in ``allowed``, with the closest
    allowed names."""
    for name in given:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; its Params are: {', '.join(allowed)}"
            raise TypeError(f"{stage} has no Param `{name}`{hint}")


def signature(specs: Iterable[ParamSpec], returns: str, others: Mapping[str, Any] | None = None) -> inspect.Signature:
    """``(self, *, other=default, ..., name=default, ...)`` with ``others`` (keywords that are not Params,
    with their defaults) and then every spec as keywords; a Param without a default shows None."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
               for name, default in (others or {}).items()]
    for spec in specs:
        default = None if spec.default is UNSET else spec.default
        annotation = spec.type_name() if default is not None else f"{spec.type_name()} | None"
        params.append(inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return inspect.Signature(params, return_annotation=returns)


def keyword_params(specs: Sequence[ParamSpec], returns: str = "None",
                   others: Mapping[str, Any] | None = None) -> Callable[[Callable], Callable]:
    """Decorates a method taking ``(self, **params)`` so that it takes the specs' Params by keyword only
    (and the keywords of ``others``, which are not Params, e.g. a search's ``estimator``).

    As pyspark's ``keyword_only``: positional arguments raise TypeError, and the keywords given are
    kept in ``self._input_kwargs``. A keyword that names no spec raises TypeError naming it before
    the method runs. The method's ``__signature__`` lists every spec with its default.

    Example:
        >>> class Stage(Params):
        ...     @keyword_params(SPECS)
        ...     def setParams(self, **params):
        ...         return self._set(**params)
    """
    allowed = (*(others or {}), *names(specs))

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self, *args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"{type(self).__name__}.{method.__name__} takes Params by keyword only, found "
                                f"{len(args)} positional argument(s)")
            check_param_names(type(self).__name__, kwargs, allowed)
            self._input_kwargs = kwargs
            return method(self, **kwargs)

        wrapper.__signature__ = signature(specs, returns, others)  # type: ignore[attr-defined]
        return wrapper

    return wrap
