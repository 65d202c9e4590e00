"""Models: the architectures, their pretrained weights, saved models and inference."""
