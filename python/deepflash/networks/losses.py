"""Loss names -> (Keras loss, target encoding) for each kind of output.

The target encoding tells the reader how to present labels: ``sparse`` class indices,
``onehot`` vectors, or ``raw`` values. MSE and MAE on a multiclass task train against one-hot
targets, as the published loss comparison did.
"""
from __future__ import annotations

LOSSES = ("auto", "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "mse", "mae")

_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae", "cce": "categorical_crossentropy",
            "bce": "binary_crossentropy"}

# The target encoding of a loss taken element by element (MSE, MAE, binary crossentropy): one column
# per class on a multiclass output, the label itself on the others.
_ELEMENTWISE = {"multiclass": "onehot", "binary": "raw", "regression": "raw"}
_ELEMENTWISE_OUTPUTS = {"binary_crossentropy": ("multiclass", "binary"), "mse": tuple(_ELEMENTWISE),
                        "mae": tuple(_ELEMENTWISE)}

# (loss, output kind) -> (keras loss, target encoding); a missing pair is not a valid combination.
_TABLE = {
    ("auto", "multiclass"): ("sparse_categorical_crossentropy", "sparse"),
    ("auto", "binary"): ("binary_crossentropy", "raw"),
    ("auto", "regression"): ("mse", "raw"),
    ("categorical_crossentropy", "multiclass"): ("categorical_crossentropy", "onehot"),
    ("sparse_categorical_crossentropy", "multiclass"): ("sparse_categorical_crossentropy", "sparse"),
    **{(loss, output): (loss, _ELEMENTWISE[output]) for loss, outputs in _ELEMENTWISE_OUTPUTS.items()
       for output in outputs},
}


def check_loss(name: str) -> str:
    """Normalises a loss name, or raises listing the valid ones."""
    key = _ALIASES.get(str(name).lower(), str(name).lower()) if isinstance(name, str) else name
    if key not in LOSSES:
        raise ValueError(f"`loss` == {name!r}, must be one of: {', '.join(LOSSES)}")
    return key


def resolve_loss(name: str, output: str) -> tuple[str, str]:
    """The Keras loss and target encoding for ``name`` on an ``output`` of multiclass, binary or regression."""
    key = check_loss(name)
    if (key, output) not in _TABLE:
        valid = sorted({k for k, o in _TABLE if o == output})
        raise ValueError(f"`loss` == {name!r} does not fit a {output} output; valid losses for it: {', '.join(valid)}")
    return _TABLE[(key, output)]
