"""The `robolearn` command: `robolearn <stage> <command> [options]`. Thin: parse a typed config, call the stage."""

from __future__ import annotations

import argparse
import importlib
import sys

from robolearn import __version__
from robolearn.config import COMMANDS, add_dataclass_args, from_args

# Stages whose `<stage>.commands` module registers that stage's @command functions (imported on start).
STAGES = (
    "data",
    "envs",
    "hardware",
    "collection",
    "pretrain",
    "encoders",
    "policies",
    "eval",
    "workflows",
    "suite",
    "lineage",
)
DEFAULT_COMMAND = "run"  # name under which a stage's main command is also reachable


def _esc(text: str) -> str:
    """argparse %-formats help strings: a literal % (\"95% intervals\") must be doubled."""
    return text.replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    for stage in STAGES:
        importlib.import_module(f"robolearn.{stage}.commands")
    parser = argparse.ArgumentParser(prog="robolearn", description="robolearn: demonstrations to evaluated policies")
    parser.add_argument("--version", action="version", version=f"robolearn {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="STAGE")
    for group, cmds in sorted(COMMANDS.items()):
        if list(cmds) == [""]:  # a stage with a single command: `robolearn <stage> [options]`
            cls, _fn, help_ = cmds[""]
            gp = groups.add_parser(group, help=_esc(help_), description=help_)
            gp.add_argument("--config", help="JSON config to start from (flags override it)")
            add_dataclass_args(gp, cls)
            gp.set_defaults(command="")
            continue
        gp = groups.add_parser(group, help=f"{group} commands")
        sub = gp.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for name, (cls, _fn, help_) in sorted(cmds.items()):
            if name == "":  # the stage's main command next to named ones: `robolearn <stage> [options]`
                name, help_ = DEFAULT_COMMAND, f"(default) {help_}"
            cp = sub.add_parser(name, help=_esc(help_), description=help_)
            cp.add_argument("--config", help="JSON config to start from (flags override it)")
            add_dataclass_args(cp, cls)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    """`robolearn pretrain --model x` -> `robolearn pretrain run --model x` for stages that have a main
    command ("") next to named ones (e.g. `robolearn pretrain prepare`)."""
    if not argv or argv[0] not in COMMANDS:
        return argv
    cmds = COMMANDS[argv[0]]
    if "" not in cmds or list(cmds) == [""]:
        return argv
    rest = argv[1:]
    if rest and (rest[0] in cmds or rest[0] in ("-h", "--help", DEFAULT_COMMAND)):
        return argv
    return [argv[0], DEFAULT_COMMAND, *rest]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    ns = parser.parse_args(argv)
    command = "" if ns.command == DEFAULT_COMMAND and "" in COMMANDS[ns.group] else ns.command
    cls, fn, _ = COMMANDS[ns.group][command]
    try:
        cfg = from_args(cls, ns)
    except (TypeError, ValueError) as e:
        print(f"robolearn {ns.group} {command}: bad configuration: {e}".replace("  ", " "), file=sys.stderr)
        return 2
    rc = fn(cfg)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
