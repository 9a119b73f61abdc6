"""Planning a study: variants and their names, what `auto` resolves to, identity, the plan, and the checks before training."""
