"""GeneticAlgorithm on cheap synthetic problems: it improves, it is seeded, it evaluates each
distinct individual once, and it rejects bad settings."""
from __future__ import annotations

import math

import pytest

from deepflash.evolution import GeneticAlgorithm, LocalEvaluator, Problem, Solution


class Target(Problem):
    """Maximise -sum |gene - target|; genes 6 and 7 are ignored by the decoding when gene 0 is 0."""

    maximize = (True,)

    def __init__(self, target=(7, 2, 9, 4, 0, 5, 3, 8)):
        self.target = target
        self.calls: list[tuple[int, ...]] = []

    def bounds(self):
        return (0,) * len(self.target), (9,) * len(self.target)

    def encode(self, decoded):
        return tuple(decoded)

    def decode(self, encoding):
        genes = list(self.check_encoding(encoding))
        if genes[0] == 0:
            genes[6:] = [0, 0]
        return tuple(genes)

    def evaluate_decoded(self, decoded):
        self.calls.append(decoded)
        return (-float(sum(abs(g - t) for g, t in zip(decoded, self.target, strict=True))),)


class Minimise(Target):
    maximize = (False,)

    def evaluate_decoded(self, decoded):
        return (-super().evaluate_decoded(decoded)[0],)


def test_improves_best_fitness_over_generations():
    problem = Target()
    result = GeneticAlgorithm(population_size=12, generations=15, seed=3).run(problem)
    history = result.history
    assert len(history) == 16
    assert history[-1].best_so_far > history[0].best
    # Best so far never gets worse, and the elite keeps each generation's best at least as good.
    assert all(b.best_so_far >= a.best_so_far for a, b in zip(history, history[1:], strict=False))
    assert all(b.best >= a.best for a, b in zip(history, history[1:], strict=False))
    assert result.best.fitness[0] == history[-1].best_so_far == problem.evaluate(result.best)[0]
    assert result.decoded == problem.decode(result.best.encoding)


def test_minimising_problem_improves_downwards():
    result = GeneticAlgorithm(population_size=12, generations=15, seed=3).run(Minimise())
    assert result.history[-1].best_so_far < result.history[0].best
    assert result.best.fitness[0] == min(g.best for g in result.history)


def test_same_seed_same_run_other_seed_other_run():
    runs = [GeneticAlgorithm(population_size=8, generations=4, seed=s).run(Target()) for s in (5, 5, 6)]
    assert runs[0].history_rows()[0]["mean"] == runs[1].history_rows()[0]["mean"]
    assert [g.best for g in runs[0].history] == [g.best for g in runs[1].history]
    assert runs[0].best == runs[1].best
    assert [g.mean for g in runs[0].history] != [g.mean for g in runs[2].history]


def test_repeated_individuals_are_not_evaluated_again():
    problem = Target()
    result = GeneticAlgorithm(population_size=10, generations=8, seed=0).run(problem)
    # Each distinct decoded individual was evaluated exactly once ...
    assert len(problem.calls) == len(set(problem.calls)) == result.evaluations
    assert sum(g.evaluated for g in result.history) == result.evaluations
    # ... although the populations held repeats (elites, unchanged offspring).
    assert sum(g.cached for g in result.history) > 0
    assert result.evaluations < 10 * 9


def test_encodings_that_decode_alike_share_one_evaluation():
    problem = Target()
    batch = [(0, 1, 1, 1, 1, 1, 4, 4), (0, 1, 1, 1, 1, 1, 7, 7)]  # genes 6, 7 ignored when gene 0 is 0
    assert problem.canonical(batch[0]) == problem.canonical(batch[1])
    counted = []

    class Counting(LocalEvaluator):
        def evaluate(self, problem, encodings):
            counted.extend(encodings)
            return super().evaluate(problem, encodings)

    GeneticAlgorithm(population_size=6, generations=3, seed=1).run(problem, Counting())
    assert len(counted) == len(set(counted)) == len(problem.calls)


def test_failed_evaluations_rank_last_and_all_failed_raises():
    class Flaky(Target):
        def evaluate_decoded(self, decoded):
            if decoded[1] % 2:
                raise RuntimeError("odd gene 1")
            return super().evaluate_decoded(decoded)

    result = GeneticAlgorithm(population_size=10, generations=3, seed=2).run(Flaky())
    assert result.best.fitness[0] <= 0 and result.best.encoding[1] % 2 == 0
    assert sum(g.failed for g in result.history) > 0

    class Broken(Target):
        def evaluate_decoded(self, decoded):
            raise RuntimeError("always broken")

    with pytest.raises(RuntimeError, match="all .* evaluations failed.*always broken"):
        GeneticAlgorithm(population_size=4, generations=1).run(Broken())


def test_solution_and_generation_stats():
    solution = Solution((1, 2), (math.nan,))
    assert not solution.ok and Solution((1, 2), (0.5,)).ok
    result = GeneticAlgorithm(population_size=4, generations=1, seed=0).run(Target())
    row = result.history_rows()[0]
    assert set(row) >= {"generation", "best", "mean", "worst", "best_so_far", "evaluated", "cached", "failed"}
    assert row["worst"] <= row["mean"] <= row["best"]


@pytest.mark.parametrize("kwargs, match", [
    ({"population_size": 0}, r"`populationSize` == 0, must be an integer >= 2"),
    ({"population_size": 1}, r"`populationSize` == 1"),
    ({"generations": -1}, r"`generations` == -1"),
    ({"crossover_rate": 1.5}, r"`crossoverRate` == 1.5, must be in \[0, 1\]"),
    ({"mutation_rate": -0.1}, r"`mutationRate`"),
    ({"elitism": 4, "population_size": 4}, r"`elitism` == 4, must be < `populationSize` == 4"),
    ({"tournament_size": 0}, r"`tournamentSize` == 0"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GeneticAlgorithm(**kwargs)


def test_encoding_out_of_bounds():
    with pytest.raises(ValueError, match=r"gene 2 == 10, must be in \[0, 9\]"):
        Target().evaluate((0, 0, 10, 0, 0, 0, 0, 0))
