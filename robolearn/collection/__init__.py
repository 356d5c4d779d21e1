"""Teleoperation station: robots (sim, network server, plugin drivers), cameras, teleop devices, the
fixed-rate control loop and the operator flow that records episodes."""
