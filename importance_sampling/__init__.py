"""Importance sampling for Keras: train on the samples that still teach."""

__version__ = "1.0.0.dev0"
