"""defectseg: surface-defect segmentation of grayscale industrial images.

The reusable parts of the DVC pipeline: data sources and validation, preprocessing,
models, losses, metrics, training and evaluation. Stage scripts in ``src/stages/``
only read their params, call this package and write its outputs.
"""
