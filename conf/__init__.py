"""The Hydra config tree (model, data, train, sweep), installed with ablate as the package `ablate.conf`."""
