"""robolearn: from teleoperated household demonstrations to evaluated robot policies."""

__version__ = "0.1.0"
