"""Platt's resource-allocating network (RAN) in numpy, with no Spark: the learning rule and scoring.

A RAN is a Gaussian radial-basis-function network for regression with one output,

    f(x) = b + sum_j h_j * exp(-||x - c_j||^2 / w_j^2),

that starts with no units and grows while it learns (J. Platt, "A Resource-Allocating Network for
Function Interpolation", Neural Computation 3(2), 1991). For each example (x, y), in order:

- the error is e = y - f(x) and d is the distance from x to the nearest centre (infinite with none);
- the distance threshold is delta(t) = max(delta_max * exp(-t / tau), delta_min), t the number of
  examples seen before this one;
- if d > delta(t) and |e| > epsilon (and fewer than ``max_units`` units exist), a unit is
  allocated: centre x, output weight e, width kappa * d (kappa * delta(t) for the very first unit,
  which has no neighbour); the network then fits (x, y) exactly;
- otherwise one LMS step: h_j += alpha * e * phi_j, b += alpha * e and, with ``adapt_centres``,
  c_j += (2 alpha / w_j^2) * e * h_j * phi_j * (x - c_j), the gradient step on the squared error.

The bias starts at the first target, as in Platt's paper. Training is a sequential pass: it cannot be
split across processes, so :mod:`deepflash.ran.stage` runs it in one Python process on one executor.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

# Rows scored per matrix product: a (rows, units) float64 block stays a few MB.
_SCORE_ROWS = 4096


@dataclass(frozen=True)
class RBFNetwork:
    """A Gaussian RBF network with one output; every array is float64.

    Attributes:
        centres: (units, input_dim) centres c_j.
        widths: (units,) widths w_j > 0.
        weights: (units,) output weights h_j.
        bias: the output's bias b.
        allocated_at: (units,) the example count t at which each unit was allocated, so the growth
            curve at any point of training is ``(allocated_at < t).sum()``.
    """

    centres: np.ndarray
    widths: np.ndarray
    weights: np.ndarray
    bias: float
    allocated_at: np.ndarray

    @property
    def num_units(self) -> int:
        return int(len(self.weights))

    @property
    def input_dim(self) -> int:
        return int(self.centres.shape[1])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """f(x) for each row of ``x`` (rows, input_dim): vectorised, a few thousand rows per product."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"expected inputs of shape (rows, {self.input_dim}), found {x.shape}")
        out = np.full(len(x), self.bias, dtype=np.float64)
        if self.num_units == 0:
            return out
        c_sq = np.einsum("ij,ij->i", self.centres, self.centres)
        inv_w2 = 1.0 / np.square(self.widths)
        for start in range(0, len(x), _SCORE_ROWS):
            block = x[start:start + _SCORE_ROWS]
            # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, clipped at 0 against rounding.
            d2 = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * block @ self.centres.T + c_sq[None, :]
            np.maximum(d2, 0.0, out=d2)
            out[start:start + len(block)] += np.exp(-d2 * inv_w2) @ self.weights
        return out

    def to_bytes(self) -> bytes:
        """The network as an ``.npz`` file (no pickled objects)."""
        buf = io.BytesIO()
        np.savez(buf, centres=self.centres, widths=self.widths, weights=self.weights,
                 bias=np.float64(self.bias), allocated_at=self.allocated_at)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RBFNetwork:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(centres=z["centres"].astype(np.float64), widths=z["widths"].astype(np.float64),
                       weights=z["weights"].astype(np.float64), bias=float(z["bias"]),
                       allocated_at=z["allocated_at"].astype(np.int64))


@dataclass(frozen=True)
class RANSettings:
    """The learning rule's constants (Platt's symbols in brackets); see the module docstring."""

    distance_max: float = 1.0       # delta_max
    distance_min: float = 0.1       # delta_min
    distance_decay: float = 200.0   # tau, in examples
    error_threshold: float = 0.05   # epsilon
    overlap: float = 0.87           # kappa
    learning_rate: float = 0.05     # alpha
    max_units: int = 100
    adapt_centres: bool = True


class RAN:
    """A RAN being trained: feed it examples in order with :meth:`learn`, read it with :meth:`network`.

    Args:
        settings: the learning rule's constants.
        input_dim: the length of each input vector.
        start: units to start from instead of none (their ``allocated_at`` is kept); with
            ``settings.max_units == start.num_units`` no unit is added and training is plain LMS
            on fixed units, which is how a fixed RBF network is trained by the same rule.

    Example:
        >>> ran = RAN(RANSettings(), input_dim=1)
        >>> ran.fit(x, y, epochs=3, seed=0)
        >>> ran.network().predict(x)
    """

    def __init__(self, settings: RANSettings, input_dim: int, start: RBFNetwork | None = None) -> None:
        self.settings = settings
        self.input_dim = int(input_dim)
        cap = settings.max_units
        self._centres = np.zeros((cap, self.input_dim))
        self._widths = np.ones(cap)
        self._weights = np.zeros(cap)
        self._allocated_at = np.zeros(cap, dtype=np.int64)
        self._k = 0
        self._bias: float | None = None
        self.seen = 0
        # Units after each completed pass.
        self.unit_history: list[int] = []
        if start is not None:
            k = start.num_units
            if k > cap:
                raise ValueError(f"`maxUnits` == {cap}, must be >= the {k} units to start from")
            self._centres[:k], self._widths[:k], self._weights[:k] = start.centres, start.widths, start.weights
            self._allocated_at[:k] = start.allocated_at
            self._k, self._bias = k, float(start.bias)

    @property
    def num_units(self) -> int:
        return self._k

    def distance_threshold(self) -> float:
        s = self.settings
        return max(s.distance_max * math.exp(-self.seen / s.distance_decay), s.distance_min)

    def learn(self, x: np.ndarray, y: np.ndarray) -> None:
        """Presents the rows of ``x`` (rows, input_dim) with targets ``y`` (rows,), in this order."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        s = self.settings
        for i in range(len(y)):
            xi, yi = x[i], float(y[i])
            if self._bias is None:
                self._bias = yi
                self.seen += 1
                continue
            k = self._k
            diff = xi - self._centres[:k]                          # (k, d)
            d2 = np.einsum("ij,ij->i", diff, diff)
            phi = np.exp(-d2 / np.square(self._widths[:k]))
            err = yi - (self._bias + float(phi @ self._weights[:k]))
            delta = self.distance_threshold()
            nearest = math.sqrt(float(d2.min())) if k else math.inf
            if nearest > delta and abs(err) > s.error_threshold and k < s.max_units:
                self._centres[k] = xi
                self._weights[k] = err
                self._widths[k] = s.overlap * (nearest if k else delta)
                self._allocated_at[k] = self.seen
                self._k = k + 1
            else:
                step = s.learning_rate * err
                if s.adapt_centres and k:
                    # Uses the output weights before this step's update, as the gradient does.
                    scale = (2.0 * step) * self._weights[:k] * phi / np.square(self._widths[:k])
                    self._centres[:k] += scale[:, None] * diff
                self._weights[:k] += step * phi
                self._bias += step
            self.seen += 1

    def end_pass(self) -> None:
        """Records the unit count after a pass over the data (see ``unit_history``)."""
        self.unit_history.append(self._k)

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 1, seed: int | None = 0) -> RAN:
        """``epochs`` passes over (x, y), each in a fresh random order from ``seed`` (None: as given)."""
        rng = None if seed is None else np.random.default_rng(seed)
        for _ in range(epochs):
            order = np.arange(len(y)) if rng is None else rng.permutation(len(y))
            self.learn(np.asarray(x)[order], np.asarray(y)[order])
            self.end_pass()
        return self

    def network(self) -> RBFNetwork:
        """A copy of the current network (safe to keep while training goes on)."""
        if self._bias is None:
            raise ValueError("the RAN has seen no example yet: expected at least one row, found 0")
        k = self._k
        return RBFNetwork(centres=self._centres[:k].copy(), widths=self._widths[:k].copy(),
                          weights=self._weights[:k].copy(), bias=float(self._bias),
                          allocated_at=self._allocated_at[:k].copy())
