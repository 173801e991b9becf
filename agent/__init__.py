"""edgecam: camera agent for edge devices."""

__version__ = "0.1.0"
