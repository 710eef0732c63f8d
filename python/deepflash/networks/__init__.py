"""Layer specs, presets, augmentation, optimizers and losses -> Keras objects.

Modules:
    layers        a JSON layer list -> ``keras.Model`` (``validate_layers``, ``build_model``)
    presets       named architectures from the studies deepflash reproduces
    augmentation  train-time image augmentation steps, checked without TensorFlow
    image_layers  deepflash's own Keras layers (the augmentation block, Cutout)
    losses        loss names -> (Keras loss, target encoding) for each kind of output
    optimizers    optimizer names -> Keras optimizers
    schedules     learning-rate schedules as pure functions of the epoch
    cascade_plan  cascade learning's plan: which layers each stage trains, for how many epochs
    cascade       the stage networks that follow a cascade plan
    keras_compat  where Keras 2 and Keras 3 differ, behind one seam

Only ``image_layers`` and ``cascade`` import TensorFlow when they are imported; the others import it
when they build something, so the driver checks specs and pickles plans and schedules without it.
"""
from __future__ import annotations

from deepflash.networks.augmentation import AUGMENTATIONS, check_against_shape, check_augmentation
from deepflash.networks.layers import (
    ACTIVATIONS,
    INITIALIZERS,
    LAYER_TYPES,
    OUTPUT_KINDS,
    build_model,
    check_initializer,
    check_input_shape,
    count_params,
    validate_layers,
)
from deepflash.networks.losses import LOSSES, check_loss, resolve_loss
from deepflash.networks.optimizers import OPTIMIZERS, check_optimizer, make_optimizer
from deepflash.networks.presets import IMAGE_PRESETS, PRESETS, check_preset_input, resolve_layers

__all__ = ["ACTIVATIONS", "AUGMENTATIONS", "IMAGE_PRESETS", "INITIALIZERS", "LAYER_TYPES", "LOSSES", "OPTIMIZERS",
           "OUTPUT_KINDS", "PRESETS", "build_model", "check_against_shape", "check_augmentation",
           "check_initializer", "check_input_shape", "check_loss", "check_optimizer", "check_preset_input",
           "count_params", "make_optimizer", "resolve_layers", "resolve_loss", "validate_layers"]
