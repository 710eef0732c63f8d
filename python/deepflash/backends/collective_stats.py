"""What a fit's gradient all-reduce cost: :class:`AllReduceStats`, accumulated by an
:class:`AllReduceMeter` in the communicators that run the all-reduce themselves (PyTorch's).
Worker-safe: no framework is imported.

Example:
    ```python
    meter = AllReduceMeter()
    meter.record(seconds=0.0012, copy_seconds=0.0001, nbytes=940_000)   # once per step
    meter.stats().describe()   # '1.2 ms/step, 0.94 MB/step over 1 steps'
    ```
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AllReduceStats:
    """One rank's gradient all-reduces over a fit (every span and stage of it).

    Args:
        steps: the all-reduces, one per training step.
        seconds: wall-clock time inside the all-reduce call, summed; it includes the wait for the
            slowest rank to arrive. On a GPU (NCCL) the call only enqueues the reduction, so this
            is the launch time and the reduction shows up in the next step's compute.
        copy_seconds: time spent copying the gradients into the flat buffer and scaling the
            result, summed (the results are views of the buffer: no copy back).
        bytes: the payload all-reduced (the flat buffer's size), summed over the steps; what
            travels on the wire depends on the algorithm (a ring sends about twice this).
    """

    steps: int = 0
    seconds: float = 0.0
    copy_seconds: float = 0.0
    bytes: int = 0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else 0.0

    @property
    def copy_seconds_per_step(self) -> float:
        return self.copy_seconds / self.steps if self.steps else 0.0

    @property
    def bytes_per_step(self) -> float:
        return self.bytes / self.steps if self.steps else 0.0

    def describe(self) -> str:
        """``1.2 ms/step, 0.42 MB/step over 470 steps`` (MB: 10^6 bytes)."""
        return (f"{1e3 * self.seconds_per_step:.1f} ms/step, {self.bytes_per_step / 1e6:.2f} MB/step "
                f"over {self.steps} steps")


class AllReduceMeter:
    """Sums every all-reduce of one communicator (one rank's fit); plain attributes, so a step
    costs four additions."""

    def __init__(self) -> None:
        self.steps, self.seconds, self.copy_seconds, self.bytes = 0, 0.0, 0.0, 0

    def record(self, seconds: float, copy_seconds: float, nbytes: int) -> None:
        """Adds one step's all-reduce: ``seconds`` in the call, ``copy_seconds`` copying, ``nbytes`` reduced."""
        self.steps += 1
        self.seconds += seconds
        self.copy_seconds += copy_seconds
        self.bytes += nbytes

    def stats(self) -> AllReduceStats:
        """The figures so far."""
        return AllReduceStats(steps=self.steps, seconds=self.seconds, copy_seconds=self.copy_seconds,
                              bytes=self.bytes)
