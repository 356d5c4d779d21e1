"""The built-in scenarios; importing this package registers them (robolearn.suite.scenario.register)."""

import robolearn.suite.families.affordance  # noqa: F401
import robolearn.suite.families.control  # noqa: F401
import robolearn.suite.families.imitation  # noqa: F401
import robolearn.suite.families.intent  # noqa: F401
import robolearn.suite.families.refer  # noqa: F401
