"""The Optuna engine: ``OptunaSearch`` (``search``), the space as ``suggest_*`` calls (``space``) and its
worker side (``engine``): samplers, pruners, storage, the pruning callback and trial states."""
