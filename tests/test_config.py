"""Typed dataclass configs: CLI flags, --config files, saved copies next to outputs."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from robolearn.cli import build_parser, main
from robolearn.config import add_dataclass_args, from_args, load_config, opt, positional, save_config


@dataclass
class Inner:
    lr: float = 1e-3
    name: str = "adam"


@dataclass
class Cfg:
    root: Path = positional(help="a folder")
    steps: int = opt(10, help="steps")
    flag: bool = False
    where: list[str] = field(default_factory=list)
    sizes: tuple[int, ...] = (1, 2)
    extra: dict = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)


def parse(argv: list[str]) -> Cfg:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    add_dataclass_args(p, Cfg)
    return from_args(Cfg, p.parse_args(argv))


def test_flags_types_and_defaults():
    c = parse(
        [
            "data",
            "--steps",
            "5",
            "--flag",
            "--where",
            "a=1",
            "--where",
            "b=2",
            "c=3",
            "--sizes",
            "4",
            "5",
            "--extra",
            '{"k": 1}',
            "--inner.lr",
            "0.5",
        ]
    )
    assert c == Cfg(Path("data"), 5, True, ["a=1", "b=2", "c=3"], (4, 5), {"k": 1}, Inner(0.5, "adam"))
    d = parse(["data"])
    assert d == Cfg(Path("data")) and d.where == [] and d.inner == Inner()
    assert parse(["x", "--no-flag"]).flag is False


def test_bad_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parse(["data", "--steps", "many"])
    assert "invalid int value" in capsys.readouterr().err


def test_save_then_load_and_override(tmp_path):
    c = parse(["data", "--steps", "7", "--inner.name", "sgd"])
    path = save_config(c, tmp_path, "run")
    saved = json.loads(path.read_text())
    assert saved["class"].endswith("Cfg") and saved["values"]["inner"]["name"] == "sgd"
    assert load_config(Cfg, path) == c
    # flags override a loaded config; unspecified fields keep the file's values
    c2 = parse(["other", "--config", str(path), "--steps", "9"])
    assert c2.steps == 9 and c2.inner.name == "sgd" and c2.root == Path("other")


def test_cli_lists_every_data_command_and_help_shows_defaults(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "--help"])
    out = capsys.readouterr().out
    for cmd in (
        "info",
        "validate",
        "repair",
        "index",
        "query",
        "split",
        "merge",
        "filter",
        "relabel",
        "stats",
        "export-video",
        "migrate",
        "synth",
        "export-robomimic",
        "serve",
    ):
        assert cmd in out, cmd
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "synth", "--help"])
    assert "[default: 40]" in capsys.readouterr().out


def test_synth_writes_config_next_to_output(tmp_path):
    assert main(["data", "synth", str(tmp_path / "ds"), "--episodes", "2", "--steps", "3", "--size", "16"]) == 0
    saved = json.loads((tmp_path / "ds" / "synth.config.json").read_text())
    assert saved["values"]["episodes"] == 2 and len(list((tmp_path / "ds").glob("*.h5"))) == 2


def test_stage_with_a_main_command_and_named_ones() -> None:
    from dataclasses import dataclass

    from robolearn.cli import main
    from robolearn.config import COMMANDS, opt

    seen = []

    @dataclass
    class Main:
        model: str = opt("a", help="model")

    @dataclass
    class Other:
        n: int = opt(1, help="n")

    COMMANDS["zz-stage"] = {
        "": (Main, lambda cfg: seen.append(("main", cfg.model)) or 0, "main"),
        "other": (Other, lambda cfg: seen.append(("other", cfg.n)) or 0, "other"),
    }
    try:
        assert main(["zz-stage", "--model", "b"]) == 0
        assert main(["zz-stage", "other", "--n", "3"]) == 0
        assert main(["zz-stage", "run", "--model", "c"]) == 0
        assert seen == [("main", "b"), ("other", 3), ("main", "c")]
    finally:
        COMMANDS.pop("zz-stage")


@dataclass
class Small:
    name: str = field(default="small", init=False)
    width: int = opt(8, help="width")
    depth: int = 1


@dataclass
class Big:
    name: str = field(default="big", init=False)
    width: int = 64
    heads: int = 4


@dataclass
class Model:
    block: Small | Big = opt(default_factory=Small, help="block kind")
    inner: Inner = field(default_factory=lambda: Inner(lr=0.5))  # a nested default instance, not the class's
    derived: int = opt(0, help="set by the program", cli=False)

    @classmethod
    def upgrade_config(cls, values: dict) -> dict:
        if "kind" in values:  # an older flat layout
            values["block"] = {"name": values.pop("kind"), "width": values.pop("width")}
        return values


def parse_model(argv: list[str]) -> Model:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    add_dataclass_args(p, Model)
    return from_args(Model, p.parse_args(argv))


def test_choice_groups_nested_defaults_and_program_fields(tmp_path, capsys):
    assert parse_model([]) == Model(Small(), Inner(0.5))
    assert parse_model(["--block.width", "3"]).block == Small(width=3)
    assert parse_model(["--block", "big", "--block.heads", "2"]).block == Big(heads=2)
    with pytest.raises(ValueError, match="--block.heads does not apply to block 'small'"):
        parse_model(["--block.heads", "2"])
    with pytest.raises(ValueError, match="unknown block 'huge'; expected one of small, big"):
        parse_model(["--block", "huge"])
    with pytest.raises(SystemExit):
        parse_model(["--derived", "3"])  # no flag for a program-filled field
    with pytest.raises(SystemExit):
        parse_model(["--block.colour", "red"])
    assert "unrecognized arguments" in capsys.readouterr().err
    m = parse_model(["--block", "big", "--inner.name", "sgd"])
    path = save_config(m, tmp_path, "m")
    assert json.loads(path.read_text())["values"]["block"] == {"name": "big", "width": 64, "heads": 4}
    assert load_config(Model, path) == m
    # an older layout goes through the class's upgrade_config
    (tmp_path / "old.json").write_text(json.dumps({"values": {"kind": "big", "width": 5}}))
    assert load_config(Model, tmp_path / "old.json").block == Big(width=5)
