"""Simulated robot, household scenes, tasks, scripted experts and the Meta-World peer suite (MuJoCo)."""

from robolearn.envs.assets import asset_path, assets_root
from robolearn.envs.experts import ExpertConfig, ScriptedExpert, make_expert
from robolearn.envs.household import HouseholdConfig, HouseholdEnv
from robolearn.envs.interface import LANGUAGE_CHARSET
from robolearn.envs.registry import gym_id, make, make_vector, register_envs
from robolearn.envs.robot import (
    ACTION_DIMS,
    ARM_JOINTS,
    HOME_QPOS,
    ControllerConfig,
    SimArm,
    arm_spec,
    arm_xml_path,
    basic_scene_spec,
)
from robolearn.envs.scenes import build_scene, default_scenes, scene_params
from robolearn.envs.tasks import TASKS, get_task

register_envs()

__all__ = [
    "ACTION_DIMS",
    "ARM_JOINTS",
    "HOME_QPOS",
    "LANGUAGE_CHARSET",
    "TASKS",
    "ControllerConfig",
    "ExpertConfig",
    "HouseholdConfig",
    "HouseholdEnv",
    "ScriptedExpert",
    "SimArm",
    "arm_spec",
    "arm_xml_path",
    "asset_path",
    "assets_root",
    "basic_scene_spec",
    "build_scene",
    "default_scenes",
    "get_task",
    "gym_id",
    "make",
    "make_expert",
    "make_vector",
    "register_envs",
    "scene_params",
]
