"""Cluster scenario: stage-level scheduling of the training stage on executors with (fake) GPUs.

The application asks for one 2-core executor per worker with both of its GPUs
(``spark.executor.resource.gpu.amount=2``) and sets no task GPU amount and no ``spark.task.cpus``,
so its ordinary stages run one task per core and take no GPU. A first stage of 4 tasks records when
each ran (the ETL's parallelism: 2 executors x 2 cores). Then a barrier fit of 2 processes: its
training stage asks, through its own ResourceProfile, for 1 GPU and 1 CPU per task; each rank
reports the GPU address Spark gave its task and the CUDA_VISIBLE_DEVICES its process saw.

Usage: spark-submit --conf spark.executor.cores=2 --conf spark.cores.max=4
       --conf spark.executor.resource.gpu.amount=2 gpu_stage.py SHARED
"""
import json
import logging
import sys
import time

from pyspark.sql import SparkSession

from deepflash import KerasEstimator
from deepflash.data.datasets import load_digits

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s", stream=sys.stdout)


def hold(batches):
    import os

    import pandas as pd
    from pyspark import TaskContext

    for batch in batches:
        started = time.time()
        time.sleep(1.5)
        gpus = TaskContext.get().resources().get("gpu")
        yield pd.DataFrame({"id": batch["id"], "pid": os.getpid(), "start": started, "end": time.time(),
                            "gpus": ",".join(gpus.addresses) if gpus else ""})


etl = spark.range(0, 4, 1, numPartitions=4).mapInPandas(hold, "id long, pid long, start double, end double, "
                                                              "gpus string").collect()
# the most tasks that ran at once
events = sorted([(r["start"], 1) for r in etl] + [(r["end"], -1) for r in etl])
running = concurrent = 0
for _, step in events:
    running += step
    concurrent = max(concurrent, running)

# What is checked is where the ranks ran, not what they learnt: a small fit.
est = KerasEstimator(backend="barrier", numProc=2, storePath=shared + "/gpu-store",
                     layers=[{"type": "dense", "units": 16, "activation": "relu"}], learningRate=0.01,
                     batchSize=64, epochs=1, validationSplit=0.0, seed=3)
model = est.fit(load_digits(spark).limit(400))
print("RESULT " + json.dumps({
    "etl_concurrent": concurrent, "etl_gpus": sorted({r["gpus"] for r in etl}),
    "devices": [{"host": d.host, "task_gpus": list(d.task_gpus), "cuda_visible_devices": d.cuda_visible_devices}
                for d in model.fitInfo.devices_per_rank],
    "epochs": len(model.getHistory()["loss"])}))
spark.stop()
