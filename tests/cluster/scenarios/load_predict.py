"""Cluster scenario: a new driver loads the PipelineModel that fit_save.py saved and scores the same
test split; compares with the predictions fit_save.py wrote.

Usage: spark-submit load_predict.py SHARED
"""
import json
import os
import sys

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepflash.data.datasets import load_digits

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
_, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
test = test.withColumn("id", F.monotonically_increasing_id())
model = PipelineModel.load(os.path.join(shared, "model"))
now = model.transform(test).select("id", "label", "prediction", vector_to_array("probability").alias("probability"))
before = spark.read.parquet(os.path.join(shared, "preds.parquet"))
a = {r["id"]: r for r in now.collect()}
b = {r["id"]: r for r in before.collect()}
common = sorted(set(a) & set(b))
max_diff = max((abs(x - y) for i in common for x, y in zip(a[i]["probability"], b[i]["probability"], strict=True)),
               default=None)
print("RESULT " + json.dumps({
    "rows": len(a), "saved_rows": len(b), "common": len(common),
    "same_labels": sum(a[i]["label"] == b[i]["label"] for i in common),
    "equal_predictions": sum(a[i]["prediction"] == b[i]["prediction"] for i in common),
    "max_abs_probability_diff": max_diff}))
spark.stop()
