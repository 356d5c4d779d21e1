"""The built-in scenarios; importing this package registers them (robolearn.suite.scenario.register)."""
