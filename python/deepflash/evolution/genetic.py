"""A genetic algorithm over a :class:`~deepflash.evolution.problem.Problem`, on DEAP's operators.

DEAP stays inside this module: tournament selection (``tools.selTournament``), uniform crossover
(``tools.cxUniform``), uniform integer mutation inside the problem's bounds
(``tools.mutUniformInt``) and elitism through a ``tools.HallOfFame``. What goes in and out are
deepflash's :class:`Solution` objects. Each run makes its own DEAP fitness class (its weights
follow the problem) instead of registering one in DEAP's module-wide ``creator``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from deap import algorithms, base, tools

from deepflash.evolution.evaluators import Evaluation, Evaluator, LocalEvaluator
from deepflash.evolution.problem import Problem, Solution

log = logging.getLogger("deepflash")
#: How often an offspring that repeats an evaluated individual is mutated again.
RETRIES = 3


@dataclass(frozen=True)
class GenerationStats:
    """One generation: best, mean and worst fitness of its population (failed ones left out), the
    best so far, how many individuals were evaluated anew, found in the cache, or failed."""

    generation: int
    best: float
    mean: float
    worst: float
    best_so_far: float
    evaluated: int
    cached: int
    failed: int
    seconds: float


@dataclass(frozen=True)
class EvolutionResult:
    """What :meth:`GeneticAlgorithm.run` found.

    Args:
        best: the best solution ever evaluated.
        decoded: ``problem.decode(best.encoding)``.
        history: one :class:`GenerationStats` per generation, generation 0 the initial population.
        evaluations: distinct individuals evaluated (each once).
        seconds: the whole run.
    """

    best: Solution
    decoded: Any
    history: tuple[GenerationStats, ...]
    evaluations: int
    seconds: float

    def history_rows(self) -> list[dict]:
        return [asdict(g) for g in self.history]


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` == {value!r}, must be an integer >= {low}")
    return value


def _check_rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` == {value!r}, must be in [0, 1]")
    return float(value)


@contextlib.contextmanager
def _seeded(seed: int):
    """DEAP's operators draw from the global ``random``: seed it for the run, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


class _Individual(list):
    """A list of genes with a DEAP fitness (comparable values) and ``raw`` (the problem's values)."""

    fitness: base.Fitness
    raw: tuple = ()


class _Toolbox:
    """The operators of one run, over ``problem``'s bounds and objectives."""

    def __init__(self, problem: Problem, ga) -> None:
        low, high = (list(b) for b in problem.bounds())
        self.problem, self.ga = problem, ga
        self.low, self.high = low, high
        weights = tuple(1.0 if up else -1.0 for up in problem.maximize)
        self.fitness_class = type("Fitness", (base.Fitness,), {"weights": weights})
        box = base.Toolbox()
        box.register("mate", tools.cxUniform, indpb=0.5)
        box.register("mutate", tools.mutUniformInt, low=low, up=high, indpb=1.0 / len(low))
        box.register("select", tools.selTournament, tournsize=ga.tournament_size)
        self.box = box
        # Two encodings that decode to the same network are one individual for the elite.
        self.hall_of_fame = tools.HallOfFame(max(1, ga.elitism),
                                             similar=lambda a, b: problem.canonical(a) == problem.canonical(b))

    def individual(self, genes) -> _Individual:
        ind = _Individual(int(g) for g in genes)
        ind.fitness = self.fitness_class()
        return ind

    def population(self, size: int) -> list[_Individual]:
        bounds = list(zip(self.low, self.high, strict=True))
        return [self.individual(random.randint(lo, hi) for lo, hi in bounds) for _ in range(size)]

    def next_generation(self, population: list[_Individual], seen: set) -> list[_Individual]:
        """Tournament-selected offspring, crossed and mutated (DEAP's ``varAnd``), plus the elite.

        An offspring that repeats an individual already evaluated (``seen`` holds their canonical
        encodings) is mutated again, up to :data:`RETRIES` times: in a small population crossing two
        copies of one parent gives that parent back, and such generations would explore nothing.
        """
        ga = self.ga
        chosen = self.box.select(population, len(population) - ga.elitism)
        offspring = algorithms.varAnd([self.box.clone(i) for i in chosen], self.box, ga.crossover_rate,
                                      ga.mutation_rate)
        for child in offspring:
            for _ in range(RETRIES):
                if self.problem.canonical(child) not in seen:
                    break
                self.box.mutate(child)
        elite = [self.box.clone(i) for i in self.hall_of_fame[:ga.elitism]]
        return elite + list(offspring)

    def solution(self, ind: _Individual) -> Solution:
        return Solution(self.problem.canonical(ind), tuple(ind.raw))

    def best(self) -> Solution:
        return self.solution(self.hall_of_fame[0])


class GeneticAlgorithm:
    """Evolves a population of encodings: tournament selection, uniform crossover, uniform integer
    mutation (repeated until an offspring differs from every individual evaluated so far, at most
    :data:`RETRIES` times) and elitism. Each generation's new, distinct individuals are evaluated in one batch
    (in parallel with a :class:`~deepflash.evolution.evaluators.SparkEvaluator`); an individual seen
    before takes its fitness from the cache instead.

    Args:
        population_size: individuals per generation, >= 2.
        generations: generations after the initial population, >= 0.
        crossover_rate: probability that a pair of offspring is crossed over.
        mutation_rate: probability that an offspring is mutated (each gene then with 1/genes).
        elitism: best individuals carried unchanged into the next generation, < population_size.
        tournament_size: individuals per selection tournament, >= 1.
        seed: seeds every random choice; the same seed and problem give the same run.

    Example:
        >>> ga = GeneticAlgorithm(population_size=8, generations=4, seed=1)
        >>> result = ga.run(problem, SparkEvaluator(spark, parallelism=2))
        >>> result.best.fitness, result.decoded
    """

    def __init__(self, population_size: int = 10, generations: int = 5, crossover_rate: float = 0.7,
                 mutation_rate: float = 0.5, elitism: int = 1, tournament_size: int = 2, seed: int = 0):
        self.population_size = _check_int("populationSize", population_size, 2)
        self.generations = _check_int("generations", generations, 0)
        self.crossover_rate = _check_rate("crossoverRate", crossover_rate)
        self.mutation_rate = _check_rate("mutationRate", mutation_rate)
        self.elitism = _check_int("elitism", elitism, 0)
        if self.elitism >= population_size:
            raise ValueError(f"`elitism` == {elitism}, must be < `populationSize` == {population_size}")
        self.tournament_size = _check_int("tournamentSize", tournament_size, 1)
        self.seed = int(seed)

    def run(self, problem: Problem, evaluator: Evaluator | None = None,
            on_generation: Callable[[GenerationStats, list[Solution]], None] | None = None) -> EvolutionResult:
        """Runs the generations and returns the best solution and the history.

        Args:
            problem: what to solve.
            evaluator: how a batch is scored; in this process by default.
            on_generation: called after each generation with its stats and its solutions.
        """
        evaluator = evaluator or LocalEvaluator()
        started = time.time()
        box = _Toolbox(problem, self)
        cache: dict[tuple[int, ...], Evaluation] = {}
        history: list[GenerationStats] = []
        with _seeded(self.seed):
            population = box.population(self.population_size)
            for generation in range(self.generations + 1):
                gen_started = time.time()
                if generation > 0:
                    population = box.next_generation(population, set(cache))
                evaluated, cached = self._evaluate(problem, evaluator, population, cache)
                box.hall_of_fame.update(population)
                solutions = [box.solution(ind) for ind in population]
                stats = self._stats(problem, generation, solutions, box.best(), evaluated, cached,
                                    time.time() - gen_started)
                history.append(stats)
                log.info("generation %d/%d: best %.4f, mean %.4f, worst %.4f, best so far %.4f "
                         "(%d evaluated, %d cached, %d failed, %.1fs)", generation, self.generations, stats.best,
                         stats.mean, stats.worst, stats.best_so_far, evaluated, cached, stats.failed,
                         stats.seconds)
                if on_generation is not None:
                    on_generation(stats, solutions)
        best = box.best()
        if not best.ok:
            errors = [e.error for e in cache.values() if e.error]
            raise RuntimeError(f"all {len(cache)} evaluations failed; the first error: "
                               f"{errors[0] if errors else 'non-finite fitness'}")
        return EvolutionResult(best=best, decoded=problem.decode(best.encoding), history=tuple(history),
                               evaluations=len(cache), seconds=time.time() - started)

    @staticmethod
    def _evaluate(problem: Problem, evaluator: Evaluator, population: list,
                  cache: dict[tuple[int, ...], Evaluation]) -> tuple[int, int]:
        """Sets every individual's fitness, evaluating each distinct new one once; returns
        (evaluated, taken from the cache)."""
        keys = [problem.canonical(ind) for ind in population]
        new = list(dict.fromkeys(k for k in keys if k not in cache))
        for evaluation in (evaluator.evaluate(problem, new) if new else []):
            cache[evaluation.encoding] = evaluation
            if evaluation.error:
                log.warning("evaluation of %s failed: %s", problem.describe(evaluation.encoding),
                            evaluation.error.splitlines()[0])
        for ind, key in zip(population, keys, strict=True):
            ind.fitness.values = _comparable(cache[key].fitness, problem.maximize)
            ind.raw = cache[key].fitness
        return len(new), len(keys) - len(new)

    @staticmethod
    def _stats(problem: Problem, generation: int, solutions: Sequence[Solution], best_so_far: Solution,
               evaluated: int, cached: int, seconds: float) -> GenerationStats:
        values = [s.fitness[0] for s in solutions if not math.isnan(s.fitness[0])]
        finite = [v for v in values if math.isfinite(v)]
        better = max if problem.maximize[0] else min
        worse = min if problem.maximize[0] else max
        nan = float("nan")
        return GenerationStats(generation=generation, best=better(values) if values else nan,
                               mean=sum(finite) / len(finite) if finite else nan,
                               worst=worse(values) if values else nan, best_so_far=best_so_far.fitness[0],
                               evaluated=evaluated, cached=cached, failed=len(solutions) - len(values),
                               seconds=seconds)


def _comparable(fitness: Sequence[float], maximize: Sequence[bool]) -> tuple[float, ...]:
    """Fitness values DEAP can compare: a failed (NaN) objective becomes the worst possible."""
    return tuple((-math.inf if up else math.inf) if math.isnan(v) else v
                 for v, up in zip(fitness, maximize, strict=True))
