"""What deepflash asks of a SparkSession, through the DataFrame API alone, so that one code path
serves a classic session and a Spark Connect one (``SparkSession.builder.remote(...)``,
Databricks standard access mode and serverless, ``spark.api.mode=connect``), where there is no
``SparkContext``, no RDD, no broadcast and no JVM gateway.

- :mod:`~deepflash.spark.session`: which kind of session, its configuration, its default filesystem;
- :mod:`~deepflash.spark.tasks`: running Python functions as Spark tasks, barrier stages included;
- :mod:`~deepflash.spark.slots`: how many tasks the cluster runs at once;
- :mod:`~deepflash.spark.tags`: tagging a block's Spark jobs, and interrupting them.

Every function takes the session it works on (a DataFrame's own ``df.sparkSession``): nothing
looks a session up per thread, so a ``fit`` from any thread works. Worker-safe: no Spark import at
module level.
"""
