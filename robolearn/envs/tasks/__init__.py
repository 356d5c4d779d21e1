"""Household tasks: registry by name."""

from __future__ import annotations

import difflib

from robolearn.envs.tasks.base import Task, TaskSim, Waypoint, top_down_quat
from robolearn.envs.tasks.button import PressButton
from robolearn.envs.tasks.button_memory import ButtonMemory
from robolearn.envs.tasks.cabinet import OpenCabinet
from robolearn.envs.tasks.drawer import CloseDrawer, OpenDrawer
from robolearn.envs.tasks.multi import MultiTask
from robolearn.envs.tasks.pick_place import PutInBin, PutOnShelf, StackBlocks

TASKS: dict[str, type[Task]] = {
    t.name: t for t in (PressButton, OpenDrawer, CloseDrawer, OpenCabinet, PutInBin, StackBlocks, PutOnShelf)
}
# Scenes that combine several tasks (the instruction picks the one that counts); kept apart from TASKS so
# the per-task registries, gym ids and tests stay those of the single tasks.
MULTI_TASKS: dict[str, type[Task]] = {MultiTask.name: MultiTask}
# Tasks that need memory (a cue that disappears); apart from TASKS for the same reason: the default evaluation,
# the suite's intent candidates and the station's task list stay those of the single visible-goal tasks.
MEMORY_TASKS: dict[str, type[Task]] = {ButtonMemory.name: ButtonMemory}


def get_task(name: str) -> type[Task]:
    """The task class called `name`; ValueError with close matches otherwise."""
    if name in TASKS:
        return TASKS[name]
    if name in MULTI_TASKS:
        return MULTI_TASKS[name]
    if name in MEMORY_TASKS:
        return MEMORY_TASKS[name]
    close = difflib.get_close_matches(str(name), [*TASKS, *MULTI_TASKS, *MEMORY_TASKS], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown household task {name!r}.{hint} Available: {', '.join(sorted(TASKS))} (also `robolearn envs list`)"
    )


__all__ = ["MEMORY_TASKS", "MULTI_TASKS", "TASKS", "Task", "TaskSim", "Waypoint", "get_task", "top_down_quat"]
