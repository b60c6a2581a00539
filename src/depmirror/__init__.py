"""depmirror: mirror critical dependencies across zones and fail over to a healthy mirror."""

__version__ = "0.1.0"
