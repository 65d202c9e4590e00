"""Training: one run's loop, its data loading, losses, schedule, processes and resume state."""
