"""LeRobot v3.0 datasets in and out of robolearn, with pyarrow and PyAV only (no lerobot at run time).

`export_lerobot(paths, out)` writes a LeRobot v3.0 dataset folder; `import_lerobot(src, out)` writes one
robolearn episode per LeRobot episode through the crash-safe writer. The layout facts are in `layout.py`.
"""

from robolearn.data.interop.lerobot.export import ExportConfig, export_lerobot
from robolearn.data.interop.lerobot.importer import ImportConfig, ImportReport, import_lerobot
from robolearn.data.interop.lerobot.layout import LeRobotFormatError

__all__ = ["ExportConfig", "ImportConfig", "ImportReport", "LeRobotFormatError", "export_lerobot", "import_lerobot"]
