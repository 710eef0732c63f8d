#!/usr/bin/env bash
# A GPU discovery script for the test cluster: every worker reports two GPUs, addresses 0 and 1.
# Spark hands them to the tasks that ask for GPUs; no CUDA device is behind them.
echo '{"name": "gpu", "addresses": ["0", "1"]}'
