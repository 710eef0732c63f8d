"""The Spark ML stages and what they share: Params, the estimator, the model, persistence, fit info and
the time-series transformer. Driver side: nothing here runs in a training process."""
