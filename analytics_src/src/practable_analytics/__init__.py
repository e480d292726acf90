"""Learning analytics for practable remote laboratories."""

__version__ = "0.1.0"
