"""AI header images for Django content, generated with Google's Nano Banana 2."""

__version__ = "0.1.0"
