"""Code that runs in the training processes (the driver for ``backend="local"``, Spark executors
otherwise). It imports no Spark ML and never the estimator, so it pickles by reference."""
