"""The LeRobot v3.0 dataset layout (facts from lerobot 0.6.1's lerobot/datasets/utils.py and what its
LeRobotDataset.create + save_episode write), and how robolearn's fields map onto LeRobot feature names.

    meta/info.json                               codebase_version "v3.0", fps, features, path templates, totals
    meta/tasks.parquet                           task (pandas index) -> task_index
    meta/stats.json                              per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    meta/episodes/chunk-XXX/file-XXX.parquet     one row per episode: episode_index, tasks, length, data/...,
                                                 dataset_from/to_index, videos/<key>/{chunk,file}_index and
                                                 {from,to}_timestamp, stats/<feature>/<stat>
    data/chunk-XXX/file-XXX.parquet              one row per frame, many episodes per file
    videos/<key>/chunk-XXX/file-XXX.mp4          many episodes concatenated per file, pts = frame / fps
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robolearn.data import schema

CODEBASE_VERSION = "v3.0"
SUPPORTED_VERSIONS = (CODEBASE_VERSION,)
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's DEFAULT_CHUNK_SIZE)
IMAGE_PREFIX = "observation.images."
STATE_PREFIX = "observation.state."
ACTION_PREFIX = "action."
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # stats keys q01 .. q99
# Per-frame bookkeeping columns every v3.0 data file has.
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
# Episode-parquet columns robolearn adds (LeRobot loads and ignores them): the episode attributes as JSON.
ROBOLEARN_ATTRS_COLUMN = "robolearn/attrs"

# robolearn per-step fields -> LeRobot feature names (the DROID-on-LeRobot style `action.<form>`).
STATE_KEYS = tuple(f.path.rsplit("/", 1)[-1] for f in schema.STATE_FIELDS)
ACTION_KEYS = tuple(f.path.rsplit("/", 1)[-1] for f in schema.ACTION_FIELDS)
# Other spellings of our state fields in LeRobot datasets (DROID's port: joint_position, ...).
STATE_ALIASES = {"joint_position": "joint_positions", "joint_velocity": "joint_velocities"}
SIGNALS = {  # LeRobot feature -> (robolearn signal field, dtype written)
    "next.reward": ("reward", "float32"),
    "next.done": ("is_last", "bool"),
    "is_terminal": ("is_terminal", "bool"),
    "discount": ("discount", "float32"),
    "intervention": ("intervention", "bool"),
}


class LeRobotFormatError(ValueError):
    """A LeRobot dataset this importer cannot use as given: names the file, the field and what was expected."""

    def __init__(self, path: str | Path, field: str, message: str):
        self.path, self.field, self.message = str(path), field, message
        super().__init__(f"{path}: {field}: {message}")

    def __reduce__(self):  # crosses process boundaries intact
        return type(self), (self.path, self.field, self.message)


def chunk_file(episode_file: int) -> dict[str, int]:
    """The n-th file of a stream -> its chunk and file indices (CHUNKS_SIZE files per chunk)."""
    return {"chunk_index": episode_file // CHUNKS_SIZE, "file_index": episode_file % CHUNKS_SIZE}


def field_size(key: str, group: str) -> int:
    fields = schema.STATE_FIELDS if group == "state" else schema.ACTION_FIELDS
    f = next(f for f in fields if f.path.endswith("/" + key))
    return int(f.shape[0]) if f.shape else 1


def load_info(root: Path) -> dict[str, Any]:
    """meta/info.json, checked: a v3.0 dataset with fps, features and path templates."""
    path = root / INFO_PATH
    if not path.is_file():
        raise LeRobotFormatError(path, "file", "missing: not a LeRobot dataset folder (expected meta/info.json)")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LeRobotFormatError(path, "file", f"not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise LeRobotFormatError(path, "file", "expected a JSON object")
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        hint = (
            " (convert it first with lerobot's `lerobot.datasets.v30.convert_dataset_v21_to_v30`)"
            if isinstance(version, str) and version.startswith("v2")
            else ""
        )
        raise LeRobotFormatError(
            path,
            "codebase_version",
            f"{version!r} is not supported; this importer reads {list(SUPPORTED_VERSIONS)}{hint}",
        )
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or fps <= 0:
        raise LeRobotFormatError(path, "fps", f"expected a positive number, got {fps!r}")
    feats = info.get("features")
    if not isinstance(feats, dict) or not feats:
        raise LeRobotFormatError(path, "features", "expected a non-empty object of feature definitions")
    for k, ft in feats.items():
        if not isinstance(ft, dict) or "dtype" not in ft or not isinstance(ft.get("shape"), list):
            raise LeRobotFormatError(path, f"features/{k}", f"expected {{dtype, shape: [...]}}, got {ft!r:.80}")
    for k in ("data_path",) + (("video_path",) if any(f["dtype"] == "video" for f in feats.values()) else ()):
        if not isinstance(info.get(k), str):
            raise LeRobotFormatError(path, k, f"expected a path template string, got {info.get(k)!r}")
    return info
