"""he-ha: high-availability supervisor for the oVirt hosted engine."""

__version__ = "0.1.0"
