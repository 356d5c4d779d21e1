"""Robot plugins through the entry-point group robolearn.robots; the driver is docs/robot-drivers.md's example."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from robolearn.hardware.robots.base import Robot
from robolearn.hardware.robots.registry import RobotSelection, available_robots, make_robot, make_robot_from

DOC = Path(__file__).resolve().parents[2] / "docs" / "robot-drivers.md"


def example_source() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- example: echo_arm.py -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/robot-drivers.md lost its echo_arm.py example"
    return match.group(1)


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake installed distribution: the doc's echo_arm module plus a dist-info declaring entry points."""
    (tmp_path / "echo_arm.py").write_text(example_source() + "\n\ndef not_a_robot(**options):\n    return 42\n")
    info = tmp_path / "robolearn_echo_arm-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: robolearn-echo-arm\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[robolearn.robots]\nechoarm = echo_arm:EchoArm\nnotarobot = echo_arm:not_a_robot\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("echo_arm", None)


def test_example_driver_is_short() -> None:
    assert len(example_source().strip().splitlines()) < 80


def test_entry_point_plugin_is_discovered_and_built(plugin_path: Path) -> None:
    assert {"sim", "remote", "echoarm"} <= set(available_robots())
    arm = make_robot("echoarm", serial="lab-3")
    assert isinstance(arm, Robot) and type(arm).__module__ == "echo_arm"
    with arm:
        assert arm.info()["robot_serial"] == "lab-3"
        forms = arm.apply(np.array([1.0, 0, 0, 0, 0, 0, 1.0]), "cartesian_velocity")
        assert forms["cartesian_velocity"][0] == pytest.approx(1.0) and forms["gripper_position"] == 1.0
        assert arm.state()["ee_position"][0] == pytest.approx(0.45 + 0.075)
        assert arm.commands == [("cartesian_velocity", [1.0, 0, 0, 0, 0, 0, 1.0])]
        with pytest.raises(ValueError, match="NaN|finite"):
            arm.apply(np.full(6, np.nan), "cartesian_velocity")


def test_plugin_served_over_the_network(plugin_path: Path) -> None:
    from robolearn.hardware.robots.remote import RemoteRobot
    from robolearn.hardware.robots.server import RobotServer, ServerConfig

    arm = make_robot_from(RobotSelection(robot="echoarm", robot_options={"serial": "lab-4"}))
    with RobotServer(arm, ServerConfig(port=0)) as server:
        server.serve_in_thread()
        with RemoteRobot(server.address, timeout_s=2.0) as remote:
            assert remote.info()["robot_type"] == "echo_arm7"
            remote.apply(np.zeros(8), "joint_position")
            assert np.allclose(remote.state()["joint_positions"], 0.0)
    assert arm.commands == [("joint_position", [0.0] * 8)]


def test_unknown_names_and_bad_plugins_give_clear_errors(plugin_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown robot 'echoarn'\. Did you mean echoarm"):
        make_robot("echoarn")
    with pytest.raises(TypeError, match="'notarobot' .*built a int, expected a robolearn.hardware.robots.Robot"):
        make_robot("notarobot")
    with pytest.raises(ValueError, match="robot plugin 'echoarm' .*rejected options \\['port'\\]"):
        make_robot("echoarm", port="/dev/ttyUSB0")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['colour'\] for robot 'sim'"):
        make_robot("sim", colour="red")
    with pytest.raises(ValueError, match="--household applies to the 'sim' robot, not 'echoarm'"):
        RobotSelection(robot="echoarm", household=2).options()


def test_builtins_without_plugins() -> None:
    assert available_robots()[:2] == ["sim", "remote"]
    remote = make_robot("remote", address="tcp://127.0.0.1:1", timeout_s=0.2)
    assert remote.address == "tcp://127.0.0.1:1" and remote.timeout_s == 0.2
    sim = make_robot_from(RobotSelection(task="put-in-bin", scene_seed=2))
    assert sim.config.scene_seed == 2
    sim.disconnect()


def test_sim_selection_defaults_match_sim_robot_config() -> None:
    from robolearn.hardware.robots.sim import SimRobotConfig

    sim_defaults = {f.name: f.default for f in dataclasses.fields(SimRobotConfig)}
    assert RobotSelection().options() == sim_defaults
