"""The deepflash benchmarks: measurements of the library, kept out of it (the wheel and the
``--py-files`` zip hold only ``deepflash``).

- ``suite``: plain Keras against KerasEstimator on Fashion-MNIST, inference, search and the speed
  goals (``gradle bench``, i.e. ``spark-submit jobs/benchmark.py``); it runs the parts below:
- ``inference``: ``model.predict``, the transfer floor, ``transform`` on Vector and ``array<float>``
  features, ``predict_batch_udf``, and a fresh session's first ``transform`` (``cold_transform``,
  a spark-submit driver of its own);
- ``cascade``: cascade against standard training of the ``deep`` preset;
- ``engines``: the search engines side by side (``--engines``);
- ``scaling``: numProc 1 against 2 on PyTorch on the two-worker test cluster, and a model of larger
  clusters (``--scaling``, or ``python benchmarks/scaling.py``);
- ``connect``: ``KerasModel.transform`` on a classic session against a Spark Connect one;
- ``streaming``: ``readMode="stream"`` against ``"memory"`` on more data than memory;
- ``evolution``: the evolutionary search on a sine wave (``python benchmarks/evolution.py``);
- ``profile_speed``: where a second fit's and transform's time goes (``python benchmarks/profile_speed.py``).

Run from the repository root, which must be on ``sys.path`` (the scripts put it there).
"""
