"""Data: find, check, split and preprocess the raw pairs, and read them back as arrays."""
