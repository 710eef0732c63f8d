"""Data on its way to the training processes: validated and materialized on the driver, read back on
the workers.

Modules:
    schema       validation of the training DataFrame in one aggregation (counts, fingerprint)
    materialize  the validated DataFrame written once to Parquet in the store, keyed by its fingerprint
    plan         ``FitPlan``, the typed object the driver hands the training processes
    readers      the ``Reader`` interface and its registry (``arrow``, ``petastorm``): a shard as numpy
    pipeline     the ``tf.data`` pipeline over a shard: in memory, or streamed through a shuffle buffer
    datasets     datasets as Spark DataFrames (digits, Fashion-MNIST, IDX files, a sine series)

``readers``, ``pipeline`` and ``plan`` are worker-safe (no Spark); ``schema``, ``materialize`` and
``datasets`` run on the driver.
"""
