"""The multi-task scene: a button, a drawer unit, a bin and a block on one table, several tasks possible at once.

`MultiTask` builds the fixtures of its sub-tasks (press-button, open-drawer, put-in-bin) into one scene with a
layout where none is in another's way (mirrored left/right per episode), and the episode's instruction picks
the sub-task whose success detector, dense reward and scripted plan count (`set_instruction`, called by the env
at reset). The sub-tasks' own detectors and plans are reused as they are. `PARAPHRASES` gives each sub-task a
set of training instructions (the sub-task's own paraphrases) and a held-out set that no training data uses;
any of them selects the sub-task, anything else is a ValueError.
"""

from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from robolearn.envs.scenes import SceneParams
from robolearn.envs.tasks.base import Task, Waypoint, set_free_pose
from robolearn.envs.tasks.button import PressButton
from robolearn.envs.tasks.drawer import OpenDrawer
from robolearn.envs.tasks.pick_place import PutInBin

SUBTASKS: dict[str, type[Task]] = {t.name: t for t in (PressButton, OpenDrawer, PutInBin)}
PARAPHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "press-button": {
        "train": PressButton.instructions,
        "heldout": ("give the button a push", "depress the button", "tap the button until it clicks"),
    },
    "open-drawer": {
        "train": OpenDrawer.instructions,
        "heldout": ("get the drawer open", "drag the drawer towards you", "open up the drawer"),
    },
    "put-in-bin": {
        "train": PutInBin.instructions,
        "heldout": ("drop the cube into the bin", "get the block into the bin", "put the cube inside the container"),
    },
}


def _key(text: str) -> str:
    return " ".join(text.lower().split())


_BY_TEXT = {_key(t): name for name, sets in PARAPHRASES.items() for phrases in sets.values() for t in phrases}


def subtask_for(instruction: str) -> str:
    """The sub-task an instruction asks for (training or held-out paraphrase); ValueError otherwise."""
    name = _BY_TEXT.get(_key(instruction))
    if name is None:
        raise ValueError(
            f"instruction {instruction!r} names no sub-task of the multi-task scene; use one of the paraphrases in "
            f"robolearn.envs.tasks.multi.PARAPHRASES (sub-tasks: {', '.join(SUBTASKS)})"
        )
    return name


class MultiTask(Task):
    name = "multi-task"
    instructions: ClassVar[tuple[str, ...]] = tuple(t for s in PARAPHRASES.values() for t in s["train"])
    max_steps = max(t.max_steps for t in SUBTASKS.values())

    def __init__(self) -> None:
        self.subtasks: dict[str, Task] = {name: cls() for name, cls in SUBTASKS.items()}
        self.active: str | None = None

    # ------------------------------------------------------------------ model
    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        for t in self.subtasks.values():
            t.build(spec, scene)

    def bind(self, model: mujoco.MjModel) -> None:
        for t in self.subtasks.values():
            t.bind(model)

    # ------------------------------------------------------------------ episode
    def reset(self, sim, rng: np.random.Generator) -> None:
        """Drawer in the middle at the back, button behind and block in front on one side, bin on the other."""
        button, drawer, bin_ = (self.subtasks[n] for n in SUBTASKS)
        side = float(rng.choice([-1.0, 1.0]))
        tz = sim.table_z
        sim.model.body_pos[drawer._unit] = [rng.uniform(0.52, 0.55), rng.uniform(-0.04, 0.04), tz]
        sim.data.qpos[drawer._qadr] = rng.uniform(0.0, 0.02)
        sim.model.body_pos[button._base] = [rng.uniform(0.43, 0.5), side * rng.uniform(0.22, 0.26), tz]
        sim.model.body_pos[bin_._bin] = [rng.uniform(0.37, 0.42), -side * rng.uniform(0.22, 0.26), tz]
        cube = [rng.uniform(0.3, 0.34), side * rng.uniform(0.12, 0.17), tz + PutInBin.HALF]
        set_free_pose(sim.model, sim.data, "cube", cube, rng.uniform(-np.pi, np.pi))

    def set_instruction(self, text: str) -> None:
        self.active = subtask_for(text)

    def current(self) -> Task:
        if self.active is None:
            raise RuntimeError("no instruction has selected a sub-task yet (the env sets it at reset)")
        return self.subtasks[self.active]

    def success(self, sim) -> bool:
        return self.current().success(sim)

    def subtask_success(self, sim) -> dict[str, bool]:
        """Every sub-task's own detector (only the active one's counts as the episode's success)."""
        return {name: bool(t.success(sim)) for name, t in self.subtasks.items()}

    def progress(self, sim) -> float:
        return self.current().progress(sim)

    def object_state(self, sim) -> np.ndarray:
        onehot = [float(name == self.active) for name in self.subtasks]
        return np.concatenate([*(t.object_state(sim) for t in self.subtasks.values()), onehot])

    def plan(self, sim) -> list[Waypoint]:
        return self.current().plan(sim)
