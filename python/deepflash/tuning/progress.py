"""Progress of a running search: one log line per finished trial, and its MLflow nested run."""
from __future__ import annotations

import logging
import time

from deepflash.reporting.tracking import SearchTracker
from deepflash.tuning.trial import TrialResult, TrialStatus

log = logging.getLogger("deepflash")


class Progress:
    """One log line per finished trial (its metric, the best so far), and its MLflow nested run.

    Args:
        total: the trial budget, for ``trial k/total``; an engine lowers it to what it will run.
        mode, metric: what ranks the trials.
        tracker: logs each trial as a nested run, when given.
    """

    def __init__(self, total: int, mode: str, metric: str, tracker: SearchTracker | None = None):
        self.total, self.mode, self.metric, self.tracker = total, mode, metric, tracker
        self.started = time.time()
        self.seen: set[int] = set()
        self.best: float | None = None
        self.offset = 0   # added to an engine's trial numbers: the refine stage numbers on from the first

    def report(self, result: TrialResult) -> None:
        """Logs and tracks a numbered trial once (its number plus :attr:`offset`)."""
        result = result.numbered(result.number + self.offset)
        if result.number in self.seen:
            return
        self.seen.add(result.number)
        if result.status is TrialStatus.OK:
            value = result.metric
            if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
                self.best = value
            this = f"{self.metric}={value:.4f}"
        elif result.status is TrialStatus.PRUNED:
            this = f"pruned after {result.epochs} epochs"
        else:
            this = f"failed ({(result.error or '?')[:120]})"
        best = "n/a" if self.best is None else f"{self.best:.4f}"
        log.info("trial %d/%d: %s, best so far %s, %.0fs elapsed", len(self.seen), self.total, this, best,
                 time.time() - self.started)
        if self.tracker is not None:
            try:
                self.tracker.trial(result)
            except Exception as e:  # tracking must never stop a search
                log.warning("could not log trial %d to MLflow: %s", result.number, e)
