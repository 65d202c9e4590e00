"""The params schema, one module per section of params.yaml, and the runs the compare section names."""
