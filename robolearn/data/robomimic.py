"""Export episodes to a robomimic-layout HDF5 file, so robomimic's SequenceDataset and tools read them.

Layout written (robomimic v0.3+ convention):

    data                    attrs: total (steps), env_args (JSON), robolearn (JSON: schema, action mapping)
      demo_<i>              attrs: num_samples, ep_meta (JSON: uuid, lab, household, scene, task, lang, success)
        obs/robot0_eef_pos  (T, 3)   obs/robot0_eef_quat (T, 4) x, y, z, w (robosuite order!)
        obs/robot0_joint_pos, robot0_joint_vel (T, 7)   obs/robot0_gripper_qpos (T, 1)
        obs/<camera>_image  (T, H, W, 3) uint8        [obs/<camera>_depth (T, H, W, 1) uint16 mm]
        [next_obs/...]      the same keys shifted by one step (last step repeated)
        actions             (T, A) float32: the commanded action form, then the gripper mapped to [-1, 1]
        rewards (T,)  dones (T,) uint8 (1 on the last step)  states (T, 0)
    mask/<name>             demo names per filter key: success, failure, and <split>_train/<split>_valid
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from robolearn.data.reader import Episode
from robolearn.data.writer import publish
from robolearn.utils import fsync_path


def _obs(ep: Episode, images: bool) -> dict[str, np.ndarray]:
    quat = ep.state("ee_quaternion")
    obs = {
        "robot0_eef_pos": ep.state("ee_position"),
        "robot0_eef_quat": quat[:, [1, 2, 3, 0]],  # wxyz -> xyzw
        "robot0_joint_pos": ep.state("joint_positions"),
        "robot0_joint_vel": ep.state("joint_velocities"),
        "robot0_gripper_qpos": ep.state("gripper_position")[:, None],
    }
    if images:
        for cam in ep.cameras:
            obs[f"{cam.name}_image"] = ep.frames(cam.name)
            if cam.depth:
                obs[f"{cam.name}_depth"] = np.stack([ep.depth(cam.name, t) for t in range(ep.num_steps)])[..., None]
    return obs


def export_robomimic(
    paths: list[Path],
    out: Path,
    split: dict[str, list[Path]] | None = None,
    next_obs: bool = False,
    images: bool = True,
    compress: bool = False,
) -> Path:
    """Write `paths` as demo_0..demo_N-1 of one robomimic file. Atomic: written to `<out>.tmp` first."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: exists; refusing to overwrite")
    if not paths:
        raise ValueError("no episodes to export")
    tmp = out.with_name(out.name + ".tmp")
    names: dict[Path, str] = {}
    masks: dict[str, list[str]] = {"success": [], "failure": []}
    try:
        _write(tmp, paths, names, masks, split, next_obs, images, compress)
        fsync_path(tmp)
        publish(tmp, out)  # never replaces a file created meanwhile
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written export behind
        raise
    return out


def _write(
    tmp: Path,
    paths: list[Path],
    names: dict[Path, str],
    masks: dict[str, list[str]],
    split: dict[str, list[Path]] | None,
    next_obs: bool,
    images: bool,
    compress: bool,
) -> None:
    total, action_space, control_hz = 0, None, None
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for p in paths:
            with Episode(p) as ep:
                if ep.num_steps == 0:
                    continue  # robomimic cannot sample a demo without steps
                name = f"demo_{len(names)}"
                names[Path(p).resolve()] = name
                space = ep.attrs["action_space"]
                if action_space is None:
                    action_space, control_hz = space, ep.attrs["control_hz"]
                elif space != action_space:
                    raise ValueError(
                        f"{p}: attrs/action_space: expected {action_space!r} like the first episode "
                        f"(robomimic needs one action layout per file), got {space!r}"
                    )
                g = data.create_group(name)
                for k, v in _obs(ep, images).items():
                    kw = {"compression": "gzip"} if compress and v.dtype in (np.uint8, np.uint16) else {}
                    g.create_dataset(f"obs/{k}", data=v, **kw)
                    if next_obs:
                        g.create_dataset(f"next_obs/{k}", data=np.concatenate([v[1:], v[-1:]]), **kw)
                grip = 2.0 * ep.action("gripper_position")[:, None] - 1.0
                g.create_dataset("actions", data=np.concatenate([ep.action(), grip], 1).astype(np.float32))
                g.create_dataset("rewards", data=ep.array("reward").astype(np.float64))
                dones = np.zeros(ep.num_steps, np.uint8)
                dones[-1] = 1
                g.create_dataset("dones", data=dones)
                g.create_dataset("states", data=np.zeros((ep.num_steps, 0)))
                g.attrs["num_samples"] = ep.num_steps
                a = ep.attrs
                g.attrs["ep_meta"] = json.dumps(
                    {
                        "uuid": a["uuid"],
                        "lab": a["lab"],
                        "household": a["household"],
                        "scene_id": a["scene_id"],
                        "operator": a["operator"],
                        "task": a["task"],
                        "lang": (ep.language or [a["task"]])[0],
                        "success": a["success"],
                        "source_file": str(p),
                    }
                )
                total += ep.num_steps
                if a["success"] == 1:
                    masks["success"].append(name)
                elif a["success"] == 0:
                    masks["failure"].append(name)
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(
            {"env_name": "robolearn", "type": 2, "env_kwargs": {"control_hz": control_hz, "action_space": action_space}}
        )
        data.attrs["robolearn"] = json.dumps(
            {"actions": f"{action_space} + gripper_position*2-1", "eef_quat": "xyzw", "gripper_qpos": "0_open_1_closed"}
        )
        for part, ps in (split or {}).items():
            masks[part] = [names[Path(p).resolve()] for p in ps if Path(p).resolve() in names]
        for k, v in masks.items():
            f.create_dataset(f"mask/{k}", data=np.array(v, dtype="S"))
        if not names:
            raise ValueError(f"no episode with at least one step among {len(paths)} episodes")
