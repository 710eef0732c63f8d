"""Cluster scenario: fit a StandardScaler + KerasEstimator (Horovod, 2 processes) Pipeline, save it
to the shared dir by a plain path (no scheme), and write the test predictions beside it.

Usage: spark-submit fit_save.py SHARED
"""
import json
import os
import sys
import time

from pyspark.ml import Pipeline
from pyspark.ml.feature import StandardScaler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepflash import KerasEstimator
from deepflash.data.datasets import load_digits

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
test = test.withColumn("id", F.monotonically_increasing_id())
pipeline = Pipeline(stages=[
    StandardScaler(inputCol="features", outputCol="scaled"),
    KerasEstimator(featuresCol="scaled", backend="horovod", numProc=2, storePath=shared + "/store",
                   layers=[{"type": "dense", "units": 64, "activation": "relu"}], learningRate=0.003,
                   batchSize=32, epochs=15, seed=11)])
started = time.time()
model = pipeline.fit(train)
fit_seconds = time.time() - started
preds = model.transform(test).select("id", "label", "prediction", vector_to_array("probability").alias("probability"))
preds.write.mode("overwrite").parquet(os.path.join(shared, "preds.parquet"))
saved = spark.read.parquet(os.path.join(shared, "preds.parquet"))
accuracy = saved.agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0]
model.write().overwrite().save(os.path.join(shared, "model"))  # no scheme: resolved against fs.defaultFS
print("RESULT " + json.dumps({"accuracy": accuracy, "fit_seconds": fit_seconds, "rows": saved.count(),
                              "run_id": model.stages[-1].fitInfo["run_id"]}))
spark.stop()
