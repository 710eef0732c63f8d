"""The name -> class registry behind BACKENDS and READERS."""
from __future__ import annotations

import pytest

from deepflash.backends import BACKENDS, Backend
from deepflash.data.readers import READERS, Reader
from deepflash.registry import Registry


def test_register_names_the_class_and_create_makes_one():
    shapes: Registry[object] = Registry("shape")

    @shapes.register("square")
    class Square:
        def __init__(self, side: int, scale: int = 1):
            self.area = side * side * scale

    @shapes.register("dot")
    class Dot:
        pass

    assert Square.name == "square"
    assert list(shapes) == ["square", "dot"] and len(shapes) == 2
    assert shapes["square"] is Square and "dot" in shapes and "circle" not in shapes
    assert shapes.create("square", 3, scale=2).area == 18
    with pytest.raises(ValueError, match="`shape` == 'circle', must be one of: dot, square"):
        shapes.create("circle")


def test_a_name_holds_one_class():
    shapes: Registry[object] = Registry("shape")
    shapes.register("square")(type("Square", (), {}))
    with pytest.raises(ValueError, match="shape 'square' is already registered to Square"):
        shapes.register("square")(type("Box", (), {}))


def test_backends_and_readers_are_registries_of_their_classes():
    assert isinstance(BACKENDS, Registry) and isinstance(READERS, Registry)
    assert set(BACKENDS) == {"barrier", "horovod", "local"}
    assert all(issubclass(cls, Backend) and cls.name == name for name, cls in BACKENDS.items())
    assert list(READERS) == ["arrow", "petastorm"]
    assert all(issubclass(cls, Reader) and cls.name == name for name, cls in READERS.items())
