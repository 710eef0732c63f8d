"""The Hyperopt engine: ``HyperoptSearch`` (``search``) and its Spark trial dispatch (``dispatch``)."""
