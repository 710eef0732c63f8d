"""Cascade (layer-wise) learning: which layers each stage trains, and for how many epochs.

Pure Python (no TensorFlow): the driver validates and pickles a :class:`CascadePlan`, and the
training processes (:mod:`deepflash.worker.loop`, :mod:`deepflash.networks.cascade`) follow it.

In cascade mode the hidden layers are split into **blocks**: a block starts at a layer with
weights (dense, conv, lstm) and holds the weightless layers after it (dropout, batchnorm,
pooling, flatten); weightless layers before the first weighted one join the first block. Stage
k trains blocks 1..k under a fresh output layer; blocks 1..k-1 are frozen (``fineTuneRate`` 0)
or trained at ``learningRate × cascadeFineTuneRate``. The last stage's output layer is the
network's own, so the model that comes out is the network the layers describe.
"""
from __future__ import annotations

from dataclasses import dataclass

TRAINING_MODES = ("standard", "cascade")
WEIGHTED_TYPES = ("dense", "conv1d", "conv2d", "conv3d", "lstm")


def cascade_blocks(specs: list[dict]) -> tuple[int, ...]:
    """For each block, the number of hidden layers up to its end (so the last is ``len(specs)``).

    Args:
        specs: validated layer dicts (:func:`deepflash.networks.validate_layers`).

    Example:
        >>> cascade_blocks([{"type": "dense"}, {"type": "dropout"}, {"type": "dense"}])
        (2, 3)
    """
    starts = [i for i, spec in enumerate(specs) if spec["type"] in WEIGHTED_TYPES]
    if not starts:
        raise ValueError("`trainingMode` == 'cascade' trains one layer with weights (dense, conv, lstm) at a time, "
                         f"but `layers` has none: {[spec['type'] for spec in specs]}")
    return tuple(starts[1:]) + (len(specs),)


def stage_epochs(total: int, stages: int, growth: float) -> tuple[int, ...]:
    """``total`` epochs split over ``stages``: each stage at least one, the rest in proportion to
    ``growth ** stage`` (largest remainders; ties go to the deeper stage), so with growth >= 1 a
    deeper stage never gets fewer epochs than the one before.

    Example:
        >>> stage_epochs(10, 4, 2.0)
        (1, 2, 3, 4)
    """
    if total < stages:
        raise ValueError(f"`epochs` == {total}, must be >= {stages} with trainingMode='cascade': each of the "
                         f"{stages} stages (one per layer with weights in `layers`) trains at least one epoch")
    weights = [growth ** i for i in range(stages)]
    extra = total - stages
    shares = [extra * w / sum(weights) for w in weights]
    counts = [int(s) for s in shares]
    order = sorted(range(stages), key=lambda i: (shares[i] - counts[i], i), reverse=True)
    for i in order[:extra - sum(counts)]:
        counts[i] += 1
    return tuple(1 + c for c in counts)


@dataclass(frozen=True)
class CascadeStage:
    """One stage: its 0-based ``index``, the hidden layers it trains up to (``layers``), and its
    epochs ``start`` (inclusive) to ``end`` (exclusive), counted over the whole run."""

    index: int
    layers: int
    start: int
    end: int

    @property
    def epochs(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class CascadePlan:
    """How a cascade fit trains (see the module docstring).

    Args:
        blocks: per stage, the number of hidden layers it trains up to (:func:`cascade_blocks`).
        epochs: per stage, its epochs (deeper stages usually more).
        fine_tune_rate: earlier blocks train at ``learningRate`` times this; 0 freezes them.

    Example:
        >>> plan = CascadePlan(blocks=(1, 2), epochs=(2, 3))
        >>> [(s.start, s.end) for s in plan.stages]
        [(0, 2), (2, 5)]
    """

    blocks: tuple[int, ...]
    epochs: tuple[int, ...]
    fine_tune_rate: float = 0.0

    @property
    def stages(self) -> list[CascadeStage]:
        out, start = [], 0
        for i, (layers, n) in enumerate(zip(self.blocks, self.epochs, strict=True)):
            out.append(CascadeStage(i, layers, start, start + n))
            start += n
        return out

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs)

    def stage_of(self, epoch: int) -> CascadeStage:
        """The stage that trains 0-based ``epoch``."""
        for stage in self.stages:
            if stage.start <= epoch < stage.end:
                return stage
        raise ValueError(f"epoch {epoch} is outside the cascade's {self.total_epochs} epochs")

    def as_dict(self) -> dict:
        return {"blocks": list(self.blocks), "epochs": list(self.epochs), "fine_tune_rate": self.fine_tune_rate}

    @classmethod
    def from_values(cls, values: dict, specs: list[dict]) -> CascadePlan | None:
        """The plan that estimator Param values describe for validated layer ``specs``; None in
        standard mode. Raises ValueError naming the Params when they disagree."""
        if values.get("trainingMode", "standard") != "cascade":
            return None
        blocks = cascade_blocks(specs)
        total = int(values["epochs"])
        given = list(values.get("cascadeEpochs") or [])
        if given:
            if len(given) != len(blocks):
                raise ValueError(f"`cascadeEpochs` == {given} has {len(given)} stage(s), but `layers` has "
                                 f"{len(blocks)} layer(s) with weights, one stage each")
            if sum(given) != total:
                raise ValueError(f"`cascadeEpochs` == {given} sums to {sum(given)}, must sum to `epochs` "
                                 f"({total}); set epochs={sum(given)}")
            epochs = tuple(int(n) for n in given)
        else:
            epochs = stage_epochs(total, len(blocks), float(values.get("cascadeGrowth", 1.5)))
        return cls(blocks=blocks, epochs=epochs, fine_tune_rate=float(values.get("cascadeFineTuneRate", 0.0)))


def check_cascade(values: dict, plan: CascadePlan, schedule) -> None:
    """The checks of a cascade fit against the other training Params; raises ValueError naming them.

    Args:
        values: estimator Param values by name.
        plan: from :meth:`CascadePlan.from_values`.
        schedule: the fit's :class:`deepflash.networks.schedules.LrSchedule`; it restarts in every stage and
            runs over that stage's epochs.
    """
    import dataclasses

    from deepflash.networks.schedules import check_schedule

    if values.get("earlyStoppingPatience", 0) > 0:
        raise ValueError(f"`earlyStoppingPatience` == {values['earlyStoppingPatience']}, must be 0 with "
                         "trainingMode='cascade': every stage trains its epochs (cascadeEpochs); the plateau rule "
                         "(reduceLrPatience) lowers the rate instead")
    if values.get("reduceLrPatience", 0) < 1:
        raise ValueError(f"`reduceLrPatience` == {values.get('reduceLrPatience', 0)}, must be >= 1 with "
                         "trainingMode='cascade': cascade learning multiplies the rate by reduceLrFactor (0.1 by "
                         "default) when the monitored validation loss plateaus within a stage")
    for stage in plan.stages:
        try:
            check_schedule(dataclasses.replace(schedule, epochs=stage.epochs), float(values["learningRate"]))
        except ValueError as e:
            raise ValueError(f"{e}; with trainingMode='cascade' the schedule restarts in every stage, and stage "
                             f"{stage.index + 1} has {stage.epochs} epoch(s) (cascadeEpochs {list(plan.epochs)})"
                             ) from None


def resolve_cascade(values: dict) -> CascadePlan | None:
    """The checked :class:`CascadePlan` of estimator Param values (``KerasEstimator.paramValues()``),
    or None in standard mode.

    Raises:
        ValueError: naming the Params that disagree (see :func:`check_cascade`).

    Example:
        >>> resolve_cascade({**est.paramValues(), "trainingMode": "cascade", "layers": "deep"}).epochs
        (2, 2, 3, 3)
    """
    if values.get("trainingMode", "standard") != "cascade":
        return None
    from deepflash.networks.layers import validate_layers
    from deepflash.networks.presets import resolve_layers
    from deepflash.networks.schedules import LrSchedule

    specs = validate_layers(resolve_layers(values["layers"]), values.get("kernelInitializer", "glorot_uniform"))
    plan = CascadePlan.from_values(values, specs)
    check_cascade(values, plan, LrSchedule.from_values(values))
    return plan
