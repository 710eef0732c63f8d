"""KerasModel without Spark: which broadcast a transform uses (a stand-in SparkContext counts them)."""
from __future__ import annotations

from deepflash import KerasModel


class FakeContext:
    def __init__(self):
        self.broadcasts = []

    def broadcast(self, value):
        self.broadcasts.append(value)
        return ("broadcast", len(self.broadcasts), value)


def test_one_broadcast_per_model_bytes_and_spark_context():
    model = KerasModel()
    model._set_keras_bytes(b"model-a")
    sc = FakeContext()
    first, digest = model._model_broadcast(sc, model._keras_bytes())
    assert model._model_broadcast(sc, model._keras_bytes()) == (first, digest)
    assert model.copy()._model_broadcast(sc, model._keras_bytes())[0] is first  # a copy holds the same bytes
    assert len(sc.broadcasts) == 1

    model._set_keras_bytes(b"model-b")
    second, other = model._model_broadcast(sc, model._keras_bytes())
    assert second != first and other != digest and sc.broadcasts == [b"model-a", b"model-b"]

    new_sc = FakeContext()
    assert model._model_broadcast(new_sc, model._keras_bytes())[0] == ("broadcast", 1, b"model-b")
    assert model._model_broadcast(new_sc, model._keras_bytes())[0] == ("broadcast", 1, b"model-b")
    assert len(new_sc.broadcasts) == 1
