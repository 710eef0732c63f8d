"""What a run reports: metrics from Spark aggregations (``metrics``), MLflow tracking (``tracking``),
figures (``plots``) and the HTML report (``report``)."""
