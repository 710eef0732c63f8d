"""Code that runs in the training processes (the driver for ``backend="local"``, Spark executors
otherwise). It imports no Spark ML and never the estimator, so it pickles by reference.

- :mod:`~deepflash.worker.settings`: what a process is given (``TrainSettings``, built on the
  driver by ``make_settings``) and returns (``TrainResult``); the read-mode choice.
- :mod:`~deepflash.worker.loop`: ``train`` (one process's run) and ``train_network`` (search
  trials and study runs, one process).
- :mod:`~deepflash.worker.inputs`: the process's shards as the datasets ``fit`` takes.
- :mod:`~deepflash.worker.checkpoint`: the checkpoint file (``Checkpoint``), for exact resume.
- :mod:`~deepflash.worker.callbacks`: the learning rate and early stopping, and the optimizer
  state a checkpoint restores.
- :mod:`~deepflash.worker.sync`: the callbacks that combine the processes (validation, metrics,
  initial weights).
- :mod:`~deepflash.worker.progress`: per-epoch checkpoint and log callbacks, the test-only crash hook.
- :mod:`~deepflash.worker.devices`: GPU pinning and CPU threads.

How the processes talk to each other is the backend's: its communicator
(:class:`deepflash.backends.base.Communicator` and its subclasses) arrives in ``TrainSettings``.
"""
