"""The results store: the only code that reads or writes runs/ (runs, checkpoints, provenance)."""
