"""The seam between an optimizer and what it optimizes: :class:`Problem` and :class:`Solution`.

An optimizer (:class:`~deepflash.evolution.genetic.GeneticAlgorithm`) knows only encodings
(tuples of integers inside the problem's bounds) and fitness values; a problem turns an encoding
into something it can score (:meth:`Problem.decode`) and scores it (:meth:`Problem.evaluate`).
Worker-safe: a problem is pickled into the Spark task that evaluates it.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Encoding = tuple  # a tuple of ints, one per gene


@dataclass(frozen=True)
class Solution:
    """An encoding and its fitness values (one per objective; NaN when its evaluation failed).

    Example:
        >>> Solution((2, 1, 0, 0, 8), (-3.2,)).fitness[0]
        -3.2
    """

    encoding: tuple[int, ...]
    fitness: tuple[float, ...]

    @property
    def ok(self) -> bool:
        return all(math.isfinite(v) for v in self.fitness)


class Problem(ABC):
    """What an optimizer solves: bounds of the encoding, and how to decode and evaluate it.

    Subclasses set :attr:`maximize` (one flag per objective) and implement :meth:`bounds`,
    :meth:`encode`, :meth:`decode` and :meth:`evaluate_decoded`.
    """

    #: per objective, whether larger fitness is better
    maximize: tuple[bool, ...] = (False,)

    @abstractmethod
    def bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(lower, upper): inclusive integer bounds of every gene."""

    @abstractmethod
    def encode(self, decoded: Any) -> tuple[int, ...]:
        """The encoding of a decoded solution."""

    @abstractmethod
    def decode(self, encoding: Sequence[int]) -> Any:
        """What an encoding stands for (e.g. an :class:`~deepflash.evolution.architecture.Architecture`)."""

    @abstractmethod
    def evaluate_decoded(self, decoded: Any) -> tuple[float, ...]:
        """The fitness values of a decoded solution."""

    def evaluate(self, solution: Any) -> tuple[float, ...]:
        """Fitness values of a :class:`Solution`, an encoding, or a decoded solution."""
        if isinstance(solution, Solution):
            solution = solution.encoding
        if isinstance(solution, (tuple, list)):
            solution = self.decode(solution)
        return tuple(float(v) for v in self.evaluate_decoded(solution))

    def canonical(self, encoding: Sequence[int]) -> tuple[int, ...]:
        """The one encoding of what ``encoding`` decodes to: equal for encodings that differ only in
        genes the decoding ignores, so an optimizer evaluates each distinct solution once."""
        return tuple(int(v) for v in self.encode(self.decode(encoding)))

    def describe(self, encoding: Sequence[int]) -> dict:
        """A JSON-friendly description of an encoding, for logs and tables."""
        return {"encoding": list(encoding)}

    def check_encoding(self, encoding: Sequence[int]) -> tuple[int, ...]:
        """``encoding`` as a tuple of ints; raises ValueError when a gene is out of bounds."""
        low, high = self.bounds()
        values = tuple(int(v) for v in encoding)
        if len(values) != len(low):
            raise ValueError(f"an encoding has {len(low)} genes, found {len(values)}: {list(values)}")
        for i, (v, lo, hi) in enumerate(zip(values, low, high, strict=True)):
            if not lo <= v <= hi:
                raise ValueError(f"gene {i} == {v}, must be in [{lo}, {hi}]")
        return values
