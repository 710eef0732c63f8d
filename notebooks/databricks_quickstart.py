# Databricks notebook source
# MAGIC %md
# MAGIC # deepflash on Databricks
# MAGIC Keras as Spark ML stages on a current Databricks ML runtime (Python 3.12, Spark 4, Keras 3, no
# MAGIC Horovod): a Pipeline with `KerasEstimator` trained data-parallel with `backend="barrier"`
# MAGIC (TensorFlow's own collectives, one process per task slot), an Optuna search with pruning across
# MAGIC the cluster, and MLflow tracking in the workspace.
# MAGIC
# MAGIC Build the wheel with `gradle wheel` and upload `build/dist/deepflash-0.1.0-py3-none-any.whl` to a
# MAGIC Unity Catalog volume. `%pip install` puts it on the driver and the workers; it adds what the
# MAGIC runtime lacks (Optuna, Hyperopt, DEAP) and keeps the runtime's own Spark, TensorFlow and Keras.

# COMMAND ----------

# MAGIC %pip install /Volumes/main/default/libs/deepflash-0.1.0-py3-none-any.whl

# COMMAND ----------

dbutils.library.restartPython()  # noqa: F821  (Databricks' own; the notebook's Python sees the new packages)

# COMMAND ----------

import mlflow
from pyspark.ml import Pipeline
from pyspark.ml.feature import StandardScaler

from deepflash import KerasEstimator, OptunaSearch, datasets
from deepflash.reporting.metrics import classification_report, diagnose

# A volume every node sees, for the materialized data, checkpoints and saved models.
STORE = "/Volumes/main/default/deepflash/store"

# `spark` is predefined in a Databricks notebook.
df = datasets.load_digits(spark)  # noqa: F821
train, test = df.randomSplit([0.8, 0.2], seed=7)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Train data-parallel with the barrier backend: one process per task slot (GPU pinned from its task resources)

# COMMAND ----------

scaler = StandardScaler(inputCol="features", outputCol="scaled")
est = KerasEstimator(featuresCol="scaled", layers="tuned_mlp", optimizer="adam", learningRate=0.002,
                     batchSize=64, epochs=20, earlyStoppingPatience=5, backend="barrier", numProc=2,
                     storePath=STORE)
model = Pipeline(stages=[scaler, est]).fit(train)
report = classification_report(model.transform(test))
print(f"test accuracy {report['accuracy']:.4f}, macro F1 {report['macro']['f1']:.4f}")
print(report["most_confused"])

# COMMAND ----------

history = model.stages[-1].getHistory()
train_acc = classification_report(model.transform(train))["accuracy"]
print(diagnose(1 - train_acc, 1 - history["val_accuracy"][-1], 1 - report["accuracy"])["recommendation"])
model.write().overwrite().save(f"{STORE}/models/digits")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Search with Optuna (TPE and median pruning), 4 trials at a time on the workers; each trial is a nested MLflow run

# COMMAND ----------

space = {"learningRate": {"loguniform": [1e-4, 1e-1]},
         "optimizer": {"choice": ["adam", "adamax", "nadam"]},
         "layers": {"architecture": {"depth": [1, 3], "units": [64, 128, 256], "activation": ["relu"],
                                     "dropout": [0.0, 0.5], "batchnorm": [True, False]}}}
search = OptunaSearch(estimator=KerasEstimator(featuresCol="features", backend="local", epochs=15, storePath=STORE),
                      space=space, sampler="tpe", pruner="median", maxEvals=24, parallelism=4,
                      metric="val_accuracy", mode="max")
with mlflow.start_run(run_name="digits-search"):
    found = search.fit(train)
display(found.trials)  # noqa: F821
print(found.bestParams)
