"""Teleoperation station: the operator flow that records episodes with robots, cameras and teleop devices
from robolearn.hardware, the shared episode recorder, and scripted expert demonstrations."""
