"""Interface: the defectseg command, comparisons as experiments, fan-out over machines, the docs' tables."""
