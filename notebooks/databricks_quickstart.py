# Databricks notebook source
# MAGIC %md
# MAGIC # deepflash on Databricks
# MAGIC Keras as Spark ML stages: a Pipeline with `KerasEstimator`, Horovod on the workers, a TPE search
# MAGIC with SparkTrials, and MLflow tracking (Databricks' own tracking server).
# MAGIC
# MAGIC Install on the cluster: the `deepflash` wheel (`gradle wheel`) plus `horovod==0.28.1`
# MAGIC (Databricks ML runtimes ship Horovod), or attach `deepflash.zip` from `gradle bundle`.

# COMMAND ----------

import mlflow
from pyspark.ml import Pipeline
from pyspark.ml.feature import StandardScaler

from deepflash import HyperoptSearch, KerasEstimator, datasets
from deepflash.evaluation import classification_report, diagnose

# `spark` is predefined in a Databricks notebook.
df = datasets.load_digits(spark)  # noqa: F821
train, test = df.randomSplit([0.8, 0.2], seed=7)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Train with Horovod: one process per worker (GPU pinned by local rank)

# COMMAND ----------

scaler = StandardScaler(inputCol="features", outputCol="scaled")
est = KerasEstimator(featuresCol="scaled", layers="tuned_mlp", optimizer="adam", learningRate=0.002,
                     batchSize=64, epochs=20, earlyStoppingPatience=5, backend="horovod", numProc=2,
                     storePath="dbfs:/tmp/deepflash-store")
model = Pipeline(stages=[scaler, est]).fit(train)
report = classification_report(model.transform(test))
print(f"test accuracy {report['accuracy']:.4f}, macro F1 {report['macro']['f1']:.4f}")
print(report["most_confused"])

# COMMAND ----------

history = model.stages[-1].getHistory()
train_acc = classification_report(model.transform(train))["accuracy"]
print(diagnose(1 - train_acc, 1 - history["val_accuracy"][-1], 1 - report["accuracy"])["recommendation"])
model.write().overwrite().save("dbfs:/tmp/deepflash/digits-model")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Search with TPE, 4 trials at a time (SparkTrials); each trial is a nested MLflow run

# COMMAND ----------

space = {"learningRate": {"loguniform": [1e-4, 1e-1]},
         "optimizer": {"choice": ["adam", "adamax", "nadam"]},
         "layers": {"architecture": {"depth": [1, 3], "units": [64, 128, 256], "activation": ["relu"],
                                     "dropout": [0.0, 0.5], "batchnorm": [True, False]}}}
search = HyperoptSearch(estimator=KerasEstimator(backend="local", epochs=15, storePath="dbfs:/tmp/deepflash-store"),
                        space=space, algo="tpe", maxEvals=24, parallelism=4, metric="val_accuracy", mode="max")
with mlflow.start_run(run_name="digits-search"):
    found = search.fit(train)
display(found.trials)  # noqa: F821
print(found.bestParams)
