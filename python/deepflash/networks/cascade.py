"""The networks of cascade learning's stages (the plan is :class:`deepflash.networks.cascade_plan.CascadePlan`).

A stage network shares its hidden layers (and so their weights) with the full network built from
``layers``: stage k runs the input through the blocks up to stage k's and into a fresh output layer
(``cascade_output_<k>``, seeded from the run's seed and the stage, so a resumed run recreates it),
except the last stage, whose output layer is the full network's own ``output``. Training a stage
network therefore trains the full network's layers in place.
"""
from __future__ import annotations

import tensorflow as tf

from deepflash.networks.cascade_plan import CascadePlan, CascadeStage

# Layers build_model adds around the hidden ones (the input reshape, augmentation, the flatten
# before the output and the output itself).
_NOT_HIDDEN = ("image", "augmentation", "output_flatten", "output")


def hidden_layers(model) -> list:
    """The hidden layers of a network from :func:`deepflash.networks.build_model`, in order."""
    return [layer for layer in model.layers
            if not isinstance(layer, tf.keras.layers.InputLayer) and layer.name not in _NOT_HIDDEN]


class CascadeStageModel(tf.keras.Model):
    """A functional model whose train step scales the updates of the earlier stages' layers.

    Each step's update of the variables of ``fine_tune_layers`` (layer names) is multiplied by
    ``fine_tune_rate``. The updates of every optimizer deepflash offers are proportional to the
    learning rate, with optimizer state that is not (Adam's moments) or that scales with it (SGD's
    velocity), so this trains those layers exactly as an optimizer at ``learningRate × rate``
    would, with one optimizer (and one Horovod allreduce) for the whole network.
    """

    fine_tune_rate: float = 1.0
    fine_tune_layers: tuple = ()

    def train_step(self, data):
        if not self.fine_tune_layers or self.fine_tune_rate == 1.0:
            return super().train_step(data)
        variables = [v for name in self.fine_tune_layers for v in self.get_layer(name).trainable_variables]
        before = [tf.identity(v) for v in variables]
        logs = super().train_step(data)
        for variable, old in zip(variables, before, strict=True):
            variable.assign(old + self.fine_tune_rate * (variable - old))
        return logs


def _seeded(initializer, seed: int | None):
    if seed is None:
        return initializer.__class__.from_config(initializer.get_config())
    return initializer.__class__.from_config({**initializer.get_config(), "seed": seed})


def stage_model(model, plan: CascadePlan, stage: CascadeStage, seed: int | None) -> CascadeStageModel:
    """Stage ``stage``'s network over ``model``'s layers, with the earlier blocks frozen
    (``plan.fine_tune_rate`` 0) or fine-tuned; uncompiled.

    It sets ``trainable`` on ``model``'s layers for this stage; :func:`reset_trainable` undoes it.

    Example:
        >>> net = stage_model(model, plan, plan.stages[0], seed=3)
        >>> net.compile(optimizer, loss); net.fit(...)
    """
    hidden = hidden_layers(model)
    if len(hidden) != plan.blocks[-1]:
        raise ValueError(f"the network has {len(hidden)} hidden layers, the cascade plan {plan.blocks[-1]}")
    reset_trainable(model)
    earlier = hidden[:plan.blocks[stage.index - 1]] if stage.index else []
    for layer in earlier:
        layer.trainable = plan.fine_tune_rate > 0
    k = stage.index + 1
    if stage.index == len(plan.blocks) - 1:
        outputs = model.output
    else:
        x = hidden[stage.layers - 1].output
        if len(x.shape) > 2:
            x = tf.keras.layers.Flatten(name=f"cascade_flatten_{k}")(x)
        out = model.get_layer("output")
        stage_seed = None if seed is None else (int(seed) + 7919 * k) % (2 ** 31)
        outputs = tf.keras.layers.Dense(out.units, activation=out.activation,
                                        kernel_initializer=_seeded(out.kernel_initializer, stage_seed),
                                        name=f"cascade_output_{k}")(x)
    net = CascadeStageModel(model.input, outputs, name=f"cascade_stage_{k}")
    net.fine_tune_rate = float(plan.fine_tune_rate)
    net.fine_tune_layers = tuple(layer.name for layer in earlier if layer.trainable_weights) \
        if 0 < plan.fine_tune_rate < 1 else ()
    return net


def reset_trainable(model) -> None:
    """Makes every layer of ``model`` trainable again (as :func:`build_model` made it)."""
    for layer in model.layers:
        layer.trainable = True
