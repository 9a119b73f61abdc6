"""Hydra sweeper that runs one-factor-at-a-time ablations (ablate's `+sweep=...`)."""
