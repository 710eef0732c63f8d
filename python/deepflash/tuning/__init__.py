"""Hyperparameter search. So far: search spaces and the grid (``deepflash.tuning.space``);
HyperoptSearch itself is issue 3."""
