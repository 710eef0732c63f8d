"""Network architectures as integer genes: :class:`ArchitectureSpace` (the bounds) and
:class:`Architecture` (one decoded network).

Genes, in order: look-back, number of hidden layers, layer type (index into
``layer_types``), activation (index into ``activations``), then the units of each of the
``max_layers`` hidden layers. Units of layers beyond the layer count are ignored (a canonical
encoding sets them to the lowest unit count). Worker-safe: no Spark; TensorFlow only when a
Keras model is built.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deepflash.networks.layers import ACTIVATIONS

LAYER_KINDS = ("lstm", "dense")
_FIXED_GENES = 4  # look-back, layer count, layer type, activation
# What a bound's error calls it: the names EvolutionarySearch's Params and the config use.
_BOUND_NAMES = {"look_back": ("minLookBack", "maxLookBack"), "hidden_layers": ("minLayers", "maxLayers"),
                "units": ("minUnits", "maxUnits")}


def check_range(low_name: str, low: int, high_name: str, high: int, minimum: int = 1) -> None:
    """Raises ValueError naming the bound when ``minimum <= low <= high`` does not hold."""
    for name, value in ((low_name, low), (high_name, high)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"`{name}` == {value!r}, must be an integer >= {minimum}")
    if low > high:
        raise ValueError(f"`{low_name}` == {low}, must be <= `{high_name}` == {high}")


def check_choices(name: str, values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """The choices as a lower-case tuple; raises ValueError naming ``name`` when empty or unknown."""
    out = tuple(str(v).lower() for v in values)
    if not out:
        raise ValueError(f"`{name}` is empty, give at least one of: {', '.join(allowed)}")
    unknown = [v for v in out if v not in allowed]
    if unknown:
        raise ValueError(f"`{name}` == {list(values)!r}: unknown {unknown}, must be among: {', '.join(allowed)}")
    return out


@dataclass(frozen=True)
class Architecture:
    """One network: a look-back window and a stack of equal-kind hidden layers.

    Args:
        look_back: steps per input window.
        layers: units per layer from input to output: the features per step, each hidden layer,
            then the one output unit, e.g. ``(1, 2, 2, 1)``.
        layer_type: ``lstm`` (the window enters as ``(look_back, features)``) or ``dense`` (the
            flat window).
        activation: of every hidden layer; the output unit is linear.

    Example:
        >>> arch = Architecture(look_back=2, layers=(1, 2, 2, 1))
        >>> arch.layer_specs()[0]
        {'type': 'lstm', 'units': 2, 'activation': 'tanh', 'return_sequences': True}
        >>> [spec["return_sequences"] for spec in arch.layer_specs()]
        [True, False]
    """

    look_back: int
    layers: tuple[int, ...]
    layer_type: str = "lstm"
    activation: str = "tanh"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(u) for u in self.layers))
        if len(self.layers) < 3:
            raise ValueError(f"`layers` == {list(self.layers)}: needs the input, at least one hidden layer and "
                             "the output, e.g. [1, 4, 1]")
        check_range("look_back", self.look_back, "look_back", self.look_back)
        check_choices("layer_type", [self.layer_type], LAYER_KINDS)
        check_choices("activation", [self.activation], ACTIVATIONS)

    @property
    def features(self) -> int:
        """Values per time step (the input layer's width)."""
        return self.layers[0]

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.layers[1:-1]

    @property
    def input_dim(self) -> int:
        """Length of the flat feature vector the network takes: ``look_back * features``."""
        return self.look_back * self.features

    def input_shape(self) -> list[int] | None:
        """The ``inputShape`` the flat window is reshaped to: ``[look_back, features]`` for an LSTM stack."""
        return [self.look_back, self.features] if self.layer_type == "lstm" else None

    def layer_specs(self) -> list[dict]:
        """Hidden layers as deepflash layer dicts (KerasEstimator's ``layers``); every LSTM but the
        last returns sequences, so that the next one gets its steps."""
        if self.layer_type == "dense":
            return [{"type": "dense", "units": u, "activation": self.activation} for u in self.hidden]
        last = len(self.hidden) - 1
        return [{"type": "lstm", "units": u, "activation": self.activation, "return_sequences": i < last}
                for i, u in enumerate(self.hidden)]

    def keras_model(self, seed: int | None = None, kernel_initializer: str = "glorot_uniform"):
        """The uncompiled regression network (one linear output), taking the flat window."""
        from deepflash.networks.layers import build_model

        return build_model(self.layer_specs(), self.input_dim, "regression", seed=seed, name="deepflash_evolved",
                           input_shape=self.input_shape(), kernel_initializer=kernel_initializer)

    def model_json(self) -> str:
        """The network's Keras config (``model.to_json()``), loadable with ``tf.keras.models.model_from_json``."""
        return self.keras_model().to_json()

    def as_dict(self) -> dict:
        return {"look_back": self.look_back, "layers": list(self.layers), "layer_type": self.layer_type,
                "activation": self.activation}


@dataclass(frozen=True)
class ArchitectureSpace:
    """The bounds of the architecture genes.

    Args:
        look_back: (min, max) window length, >= 1.
        hidden_layers: (min, max) number of hidden layers, >= 1.
        units: (min, max) units per hidden layer, >= 1.
        layer_types: the kinds a search may choose (``lstm``, ``dense``).
        activations: the hidden activations a search may choose.
        features: values per time step of the series.

    Example:
        >>> space = ArchitectureSpace(look_back=(1, 8), hidden_layers=(1, 3), units=(1, 16))
        >>> space.decode(space.encode(Architecture(2, (1, 2, 2, 1))))
        Architecture(look_back=2, layers=(1, 2, 2, 1), layer_type='lstm', activation='tanh')
    """

    look_back: tuple[int, int] = (1, 8)
    hidden_layers: tuple[int, int] = (1, 3)
    units: tuple[int, int] = (1, 16)
    layer_types: tuple[str, ...] = ("lstm",)
    activations: tuple[str, ...] = ("tanh",)
    features: int = 1

    def __post_init__(self) -> None:
        for key, (low_name, high_name) in _BOUND_NAMES.items():
            low, high = getattr(self, key)
            check_range(low_name, low, high_name, high)
            object.__setattr__(self, key, (int(low), int(high)))
        object.__setattr__(self, "layer_types", check_choices("layer_types", self.layer_types, LAYER_KINDS))
        object.__setattr__(self, "activations", check_choices("activations", self.activations, ACTIVATIONS))
        check_range("features", self.features, "features", self.features)

    def bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Inclusive (lower, upper) bounds of every gene."""
        n = self.hidden_layers[1]
        low = (self.look_back[0], self.hidden_layers[0], 0, 0) + (self.units[0],) * n
        high = (self.look_back[1], self.hidden_layers[1], len(self.layer_types) - 1,
                len(self.activations) - 1) + (self.units[1],) * n
        return low, high

    def decode(self, encoding: Sequence[int]) -> Architecture:
        genes = [int(g) for g in encoding]
        count = genes[1]
        return Architecture(look_back=genes[0], layers=(self.features, *genes[_FIXED_GENES:_FIXED_GENES + count], 1),
                            layer_type=self.layer_types[genes[2]], activation=self.activations[genes[3]])

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        """The canonical encoding of ``arch``; raises ValueError when it lies outside the space."""
        hidden = list(arch.hidden)
        checks = (("look_back", arch.look_back, self.look_back), ("hidden layers", len(hidden), self.hidden_layers),
                  *(("units", u, self.units) for u in hidden))
        for what, value, (low, high) in checks:
            if not low <= value <= high:
                raise ValueError(f"{what} == {value} lies outside the space's [{low}, {high}]")
        for what, value, choices in (("layer_type", arch.layer_type, self.layer_types),
                                     ("activation", arch.activation, self.activations)):
            if value not in choices:
                raise ValueError(f"{what} == {value!r} is not among the space's {list(choices)}")
        if arch.features != self.features:
            raise ValueError(f"the architecture takes {arch.features} features per step, the space {self.features}")
        padding = [self.units[0]] * (self.hidden_layers[1] - len(hidden))
        return (arch.look_back, len(hidden), self.layer_types.index(arch.layer_type),
                self.activations.index(arch.activation), *hidden, *padding)
