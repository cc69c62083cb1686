"""Pretraining: the Lightning module, its callbacks and the run directory."""
