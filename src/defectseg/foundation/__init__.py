"""Foundation: atomic writes, CPU threads and the stage wrapper; imports nothing of the package but errors."""
