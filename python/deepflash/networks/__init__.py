"""Layer specs, presets, optimizers and losses -> Keras objects."""
from __future__ import annotations

from deepflash.networks.layers import ACTIVATIONS, LAYER_TYPES, OUTPUT_KINDS, build_model, count_params, validate_layers
from deepflash.networks.losses import LOSSES, check_loss, resolve_loss
from deepflash.networks.optimizers import OPTIMIZERS, check_optimizer, make_optimizer
from deepflash.networks.presets import PRESETS, resolve_layers

__all__ = ["ACTIVATIONS", "LAYER_TYPES", "LOSSES", "OPTIMIZERS", "OUTPUT_KINDS", "PRESETS", "build_model",
           "check_loss", "check_optimizer", "count_params", "make_optimizer", "resolve_layers", "resolve_loss",
           "validate_layers"]
