"""Evaluation: measure a trained run at each image's own size; predict and export for use."""
