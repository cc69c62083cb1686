"""Evaluation of frozen representations."""
