"""Hardware: one interface each for robots (the sim arm, the network client and server, plugin drivers),
cameras (sim, OpenCV, plugins) and teleop devices (keyboard, SpaceMouse, gamepad, the sim expert, plugins),
all with the connect / disconnect lifecycle (lifecycle.py); the fixed-rate control loop, plugin discovery
through entry points, and ChArUco camera calibration. The collection station and real-robot rollouts build
on it; it imports nothing of collection or eval."""
