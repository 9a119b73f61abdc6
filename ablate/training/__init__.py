"""Training: the engine's loop and strategies, checkpoints and stop signals, augmentation, and the runner of one variant."""
