"""The package version: one home, read by the package face, model.json and metrics.json."""

__version__ = "0.1.0"
