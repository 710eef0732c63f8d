"""The Hyperopt engine: ``HyperoptSearch`` (``search``), the space as hyperopt expressions (``space``),
trial results as hyperopt's result dicts (``trials``) and its Spark trial dispatch (``dispatch``)."""
