"""Data: schema validation, materialization to Parquet in the store, and readers for the workers."""
