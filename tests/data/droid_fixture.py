"""Write a small DROID raw-layout tree from DROID's public code (see robolearn/data/interop/droid.py for the
facts and their files): `<lab>/success|failure/<date>/<time>/` folders with trajectory.h5, recordings/MP4
(mono and stereo), recordings/SVO (sometimes missing) and metadata_<uuid>.json. Frames encode the step index
in their brightness so a test can check frame/row alignment after the lossy codec."""

from __future__ import annotations

import json
from pathlib import Path

import av
import h5py
import numpy as np
from scipy.spatial.transform import Rotation

SERIALS = {"wrist": "18026681", "ext1": "22008760", "ext2": "24400334"}  # sorted: ext1 < ext2 as in DROID
W, H = 32, 24
MP4_FPS = 60  # declared rate differs from the 15 Hz control rate on purpose


def level(t: int, cam: int) -> int:
    """Brightness of frame t of camera index cam."""
    return 20 + 9 * t + 3 * cam


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=MP4_FPS)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.options = {"crf": "10"}
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_episode(
    folder: Path,
    steps: int = 20,
    success: bool = True,
    lab: str = "IPRL",
    building: str = "Gates",
    scene_id: int = 3,
    user: str = "Alice",
    stereo: bool = True,
    svo: bool = False,
    idle: tuple[int, ...] = (0, 1),
    frames: dict[str, int] | None = None,
    wrap: bool = True,
) -> Path:
    """One episode folder. `frames`: per role, how many frames its MP4 holds (default `steps`)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(scene_id)
    t = np.arange(steps)
    ms = 1_700_000_000_000.0 + t * (1000 / 15)
    yaw = np.pi - 0.05 + 0.01 * t  # crosses +pi: stored wrapped to -pi, as DROID's Euler angles are
    yaw = (yaw + np.pi) % (2 * np.pi) - np.pi if wrap else yaw
    cart = np.stack([0.4 + 0.01 * t, 0 * t, 0.3 + 0 * t, np.pi + 0 * t, 0 * t, yaw], 1)
    with h5py.File(folder / "trajectory.h5", "w") as f:
        f.attrs.update(
            {"success": success, "failure": not success, "current_task": "put the marker in the cup", "user": user}
        )
        rs = "observation/robot_state"
        f[f"{rs}/cartesian_position"] = cart
        f[f"{rs}/joint_positions"] = rng.normal(size=(steps, 7))
        f[f"{rs}/joint_velocities"] = rng.normal(size=(steps, 7))
        f[f"{rs}/gripper_position"] = np.linspace(0, 1, steps)
        f[f"{rs}/joint_torques_computed"] = np.zeros((steps, 7))
        f["action/cartesian_position"] = cart + 0.001
        f["action/cartesian_velocity"] = rng.uniform(-1, 1, (steps, 6))
        f["action/joint_position"] = rng.normal(size=(steps, 7))
        f["action/joint_velocity"] = rng.normal(size=(steps, 7))
        f["action/gripper_position"] = np.linspace(0, 1, steps)
        f["action/gripper_velocity"] = np.zeros(steps)
        f["action/target_cartesian_position"] = cart
        f["action/target_gripper_position"] = np.linspace(0, 1, steps)
        moving = np.ones(steps, bool)
        moving[list(idle)] = False
        f["observation/controller_info/movement_enabled"] = moving
        f["observation/controller_info/controller_on"] = np.ones(steps, bool)
        f["observation/timestamp/skip_action"] = ~moving
        for i, k in enumerate(("step_start", "policy_start", "sleep_start", "control_start", "step_end")):
            f[f"observation/timestamp/control/{k}"] = ms + 5 * i
        f["observation/timestamp/robot_state/read_start"] = ms
        for role, s in SERIALS.items():
            f[f"observation/camera_type/{s}"] = np.full(steps, 0 if role == "wrist" else 1)
            pose = np.array([0.1, 0.2 if role == "ext1" else -0.2, 0.5, -2.0, 0.1, 0.5 if role != "wrist" else 0.0])
            f[f"observation/camera_extrinsics/{s}_left"] = np.tile(pose, (steps, 1))
            f[f"observation/camera_extrinsics/{s}_right"] = np.tile(pose + 0.1, (steps, 1))
            f[f"observation/camera_intrinsics/{s}_left"] = np.tile(
                [[500.0, 0, 640], [0, 500, 360], [0, 0, 1]], (steps, 1, 1)
            )
            f[f"observation/timestamp/cameras/{s}_estimated_capture"] = ms - 30
            f[f"observation/timestamp/cameras/{s}_frame_received"] = ms - 10
    mp4 = folder / "recordings" / "MP4"
    for i, (role, s) in enumerate(SERIALS.items()):
        n = (frames or {}).get(role, steps)
        imgs = [np.full((H, W, 3), level(k, i), np.uint8) for k in range(n)]
        write_mp4(mp4 / f"{s}.mp4", imgs)
        if stereo:
            write_mp4(mp4 / f"{s}-stereo.mp4", [np.concatenate([im, 255 - im], 1) for im in imgs])
        if svo:
            (folder / "recordings" / "SVO").mkdir(parents=True, exist_ok=True)
            (folder / "recordings" / "SVO" / f"{s}.svo").write_bytes(b"svo")
    uuid = f"{lab}+{user.lower()}01+{folder.name}"
    ext = {f"{r}_cam_extrinsics": list(np.array([0.1, 0.2, 0.5, -2.0, 0.1, 0.5])) for r in ("wrist", "ext1", "ext2")}
    (folder / f"metadata_{uuid}.json").write_text(
        json.dumps(
            {
                "uuid": uuid,
                "lab": lab,
                "user": user,
                "user_id": f"{user.lower()}01",
                "date": "2023-07-07",
                "timestamp": "2023-07-07-09h-42m-23s",
                "building": building,
                "scene_id": scene_id,
                "success": success,
                "robot_serial": "295341-1326561",
                "current_task": "put the marker in the cup",
                "trajectory_length": steps,
                **{f"{r}_cam_serial": s for r, s in SERIALS.items()},
                **ext,
            }
        )
    )
    return folder


def write_tree(root: Path, steps: int = 20) -> list[Path]:
    """A lab tree with 2 success episodes and 1 failure episode (one without stereo, one with SVOs)."""
    lab = root / "IPRL"
    return [
        write_episode(lab / "success/2023-07-07/Fri_Jul__7_09:42:23_2023", steps, scene_id=3),
        write_episode(lab / "success/2023-07-07/Fri_Jul__7_10:01:05_2023", steps, scene_id=4, stereo=False, svo=True),
        write_episode(
            lab / "failure/2023-07-08/Sat_Jul__8_11:00:00_2023", steps, success=False, building="Packard", user="Bob"
        ),
    ]


def expected_quat(cart6: np.ndarray) -> np.ndarray:
    return Rotation.from_euler("xyz", cart6[:, 3:6]).as_quat()[:, [3, 0, 1, 2]]
