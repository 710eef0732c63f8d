"""When a DataFrame's rows cannot have changed since an earlier fit, and what that fit's validation
pass found about them.

A fit validates its data and fingerprints it by content in one pass over every row
(:func:`deepflash.data.schema.summarize`). On a second fit of the same in-memory data that pass finds
what the first found, so :class:`SummaryMemo` keeps the first's :class:`DataSummary` and gives it
back, but only where Spark itself guarantees the same rows:

- every leaf of the plan, with Spark's cached data substituted, is data held in the session: a
  ``LocalRelation`` (rows inside the plan), a ``Range``, or an ``InMemoryRelation`` whose cache is
  fully loaded (``df.cache()`` after its first action; the key names that cache, so a DataFrame
  unpersisted and cached again is validated again);
- the plan over those leaves is deterministic (no unseeded ``rand``, no ``uuid`` after the cache);
- the DataFrame is the same object, or has the same plan as the earlier one, which is still alive.

Anything that reads files or tables (which can change under the same plan), a cache not yet loaded,
and a Spark Connect session (whose plan the client cannot inspect) are validated on every fit.

Example:
    >>> identity = content_identity(df.cache())   # None: not loaded yet
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# Leaves whose rows live in the session's own memory; a leaf of any other kind makes the data
# "may have changed".
_HELD_LEAVES = {"LocalRelation", "Range", "OneRowRelation"}
_CACHED_LEAF = "InMemoryRelation"


@dataclass(frozen=True)
class ContentIdentity:
    """What names a DataFrame's rows for as long as they cannot change.

    Attributes:
        session: the Spark application and its start (rows of one session are not another's).
        plan_hash: the plan's semantic hash (equal plans, equal hash; confirmed by ``sameSemantics``).
        caches: the ids of the cached RDDs its ``InMemoryRelation`` leaves read, in plan order.
    """

    session: str
    plan_hash: int
    caches: tuple[int, ...]


def content_identity(df) -> ContentIdentity | None:
    """The identity of ``df``'s rows, or None where they may change between two actions (see the
    module's rules) or the plan cannot be inspected (Spark Connect)."""
    jdf = getattr(df, "_jdf", None)
    if jdf is None:
        return None
    try:
        plan = _with_cache_now(jdf)
        if not plan.deterministic():
            return None
        leaves = plan.collectLeaves()
        caches = []
        for i in range(leaves.size()):
            leaf = leaves.apply(i)
            kind = leaf.getClass().getSimpleName()
            if kind == _CACHED_LEAF:
                builder = leaf.cacheBuilder()
                if not builder.isCachedColumnBuffersLoaded():
                    return None
                caches.append(int(builder.cachedColumnBuffers().id()))
            elif kind not in _HELD_LEAVES:
                return None
        context = df.sparkSession.sparkContext
        return ContentIdentity(session=f"{context.applicationId}@{context.startTime}",
                               plan_hash=int(plan.semanticHash()), caches=tuple(caches))
    except Exception:  # an internal API that moved: validate, as without the memo
        return None


def _with_cache_now(jdf):
    """The plan with the session's cached data as it is now substituted (a DataFrame's own
    ``withCachedData`` is fixed at its first use, before a later unpersist or cache)."""
    manager, analyzed = jdf.sparkSession().sharedState().cacheManager(), jdf.queryExecution().analyzed()
    try:
        return manager.useCachedData(analyzed)
    except Exception:  # newer Spark takes a filter too; Py4J must pass its default itself
        try:
            return manager.useCachedData(analyzed, getattr(manager, "useCachedData$default$2")())
        except Exception:  # an old builder's cache, once unpersisted, reads as not loaded: no identity
            return jdf.queryExecution().withCachedData()


class SummaryMemo:
    """The validation results of the last ``capacity`` fits over unchanging data, by
    :class:`ContentIdentity` and the fit's own key (columns, task, split, seed).

    An entry holds its DataFrame weakly: it goes when the caller drops the DataFrame."""

    def __init__(self, capacity: int = 16) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple, tuple[weakref.ref, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, df, key: str) -> Any | None:
        """The value stored for ``df``'s rows under ``key``, or None."""
        identity = content_identity(df)
        if identity is None:
            return None
        with self._lock:
            entry = self._entries.get((identity, key))
            if entry is None:
                return None
            earlier = entry[0]()
            if earlier is None:
                del self._entries[(identity, key)]
                return None
            self._entries.move_to_end((identity, key))
        if earlier is not df and not _same_semantics(df, earlier):
            return None
        return entry[1]

    def put(self, df, key: str, value: Any) -> None:
        """Keeps ``value`` for ``df``'s rows under ``key``, where they cannot change."""
        identity = content_identity(df)
        if identity is None:
            return
        try:
            ref = weakref.ref(df)
        except TypeError:
            return
        with self._lock:
            self._entries[(identity, key)] = (ref, value)
            self._entries.move_to_end((identity, key))
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _same_semantics(df, other) -> bool:
    try:
        return bool(df.sameSemantics(other))
    except Exception:
        return False
