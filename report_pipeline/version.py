"""The package's version, in a leaf module: the run manifest reads it without importing the package's face."""

__version__ = "0.1.0"
