"""Measures: pixel and image-level metrics, and the decision that turns probabilities into masks."""
