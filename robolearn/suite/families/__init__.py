"""The built-in scenarios; importing this package registers them (robolearn.suite.scenario.register)."""

from robolearn.suite.families import refer  # noqa: F401
