"""Importers and exporters between robolearn episodes and other datasets' layouts (robomimic, DROID raw,
LeRobot v3). Each source has its own module; shared machinery (parallel, resumable runs with a report) is in
`robolearn.data.interop.runner`. See docs/interop.md."""
