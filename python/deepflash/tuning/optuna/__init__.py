"""The Optuna engine: ``OptunaSearch`` (``search``) and its worker side (``engine``): samplers, pruners,
storage and the pruning callback."""
