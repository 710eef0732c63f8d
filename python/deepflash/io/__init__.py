"""Where bytes live.

Modules:
    fs           the one filesystem layer: paths qualified as Spark qualifies them, I/O through
                 ``pyarrow.fs`` for every scheme, atomic file writes
    atomic       directories that appear whole: a job's staged output (``atomic_dir``) and committed
                 data (``commit_dir``, ``is_complete``)
    store        the store's layout (materialized data, runs, checkpoints) on top of ``fs``
    keras_files  Keras models to and from bytes in the ``.keras`` format, loaded in safe mode

Worker-safe: no module here imports Spark at module level.
"""
