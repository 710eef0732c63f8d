"""Named classes that join a registry with a decorator: the backends (``deepflash.backends.BACKENDS``)
and the readers (``deepflash.data.readers.READERS``).

A :class:`Registry` is a read-only mapping from name to class, in the order the classes registered;
``@registry.register(name)`` adds a class and sets its ``name`` attribute, and
:meth:`Registry.create` makes an instance by name, with the error a misspelt setting gets.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, type[T]], Generic[T]):
    """Classes of one kind by name.

    Args:
        kind: what the names choose (``"backend"``, ``"reader"``): the setting named in errors.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """A class decorator that registers the class under ``name`` and sets its ``name`` to it.

        Raises:
            ValueError: another class already holds ``name``.
        """

        def wrap(cls: type[T]) -> type[T]:
            held = self._classes.get(name)
            if held is not None and held.__qualname__ != cls.__qualname__:
                raise ValueError(f"{self.kind} {name!r} is already registered to {held.__qualname__}")
            self._classes[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return wrap

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """An instance of the class registered under ``name``, made with ``args`` and ``kwargs``.

        Raises:
            ValueError: no class holds ``name``; the message lists the names there are.
        """
        if name not in self._classes:
            raise ValueError(f"`{self.kind}` == {name!r}, must be one of: {', '.join(sorted(self._classes))}")
        return self._classes[name](*args, **kwargs)

    def __getitem__(self, name: str) -> type[T]:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._classes)})"
