"""Simulated robot, scenes and tasks (MuJoCo)."""

from robolearn.envs.assets import asset_path, assets_root
from robolearn.envs.robot import (ACTION_DIMS, ARM_JOINTS, HOME_QPOS, ControllerConfig, SimArm, arm_spec,
                                  arm_xml_path, basic_scene_spec)

__all__ = ["ACTION_DIMS", "ARM_JOINTS", "HOME_QPOS", "ControllerConfig", "SimArm", "arm_spec", "arm_xml_path",
           "asset_path", "assets_root", "basic_scene_spec"]
