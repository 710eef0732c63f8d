"""Layer specs, presets, augmentation, optimizers and losses -> Keras objects."""
from __future__ import annotations

from deepflash.networks.augmentation import AUGMENTATIONS, check_against_shape, check_augmentation
from deepflash.networks.layers import (ACTIVATIONS, INITIALIZERS, LAYER_TYPES, OUTPUT_KINDS, build_model,
                                       check_initializer, check_input_shape, count_params, validate_layers)
from deepflash.networks.losses import LOSSES, check_loss, resolve_loss
from deepflash.networks.optimizers import OPTIMIZERS, check_optimizer, make_optimizer
from deepflash.networks.presets import IMAGE_PRESETS, PRESETS, check_preset_input, resolve_layers

__all__ = ["ACTIVATIONS", "AUGMENTATIONS", "IMAGE_PRESETS", "INITIALIZERS", "LAYER_TYPES", "LOSSES", "OPTIMIZERS",
           "OUTPUT_KINDS", "PRESETS", "build_model", "check_against_shape", "check_augmentation",
           "check_initializer", "check_input_shape", "check_loss", "check_optimizer", "check_preset_input",
           "count_params", "make_optimizer", "resolve_layers", "resolve_loss", "validate_layers"]
