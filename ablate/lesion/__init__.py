"""Lesions: knock units out of trained networks (no retraining) and compare how much each variant relies on them."""
