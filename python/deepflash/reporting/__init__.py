"""What a run reports.

Modules:
    metrics   classification and regression metrics from Spark aggregations, error analysis, the
              bias/variance diagnosis and satisficing model selection
    tracking  MLflow: training runs, searches (a parent run, a nested run per trial), registration
    plots     figures as PNG files (learning curves, confusion matrix, search progress, generations)
    report    one self-contained HTML page with the config, metric tables and plots
"""
