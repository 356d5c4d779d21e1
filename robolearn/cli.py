"""The `robolearn` command: `robolearn <stage> <command> [options]`. Thin: parse a typed config, call the stage."""

from __future__ import annotations

import argparse
import importlib
import sys

from robolearn import __version__
from robolearn.config import COMMANDS, add_dataclass_args, from_args

# Modules whose @command functions make up the CLI (imported on start so they register).
COMMAND_MODULES = (
    "robolearn.data.commands",
    "robolearn.envs.commands",
    "robolearn.collection.commands",
    "robolearn.demo",
)


def build_parser() -> argparse.ArgumentParser:
    for m in COMMAND_MODULES:
        importlib.import_module(m)
    parser = argparse.ArgumentParser(prog="robolearn", description="robolearn: demonstrations to evaluated policies")
    parser.add_argument("--version", action="version", version=f"robolearn {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="STAGE")
    for group, cmds in sorted(COMMANDS.items()):
        if list(cmds) == [""]:  # a stage with a single command: `robolearn <stage> [options]`
            cls, _fn, help_ = cmds[""]
            gp = groups.add_parser(group, help=help_, description=help_)
            gp.add_argument("--config", help="JSON config to start from (flags override it)")
            add_dataclass_args(gp, cls)
            gp.set_defaults(command="")
            continue
        gp = groups.add_parser(group, help=f"{group} commands")
        sub = gp.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for name, (cls, _fn, help_) in sorted(cmds.items()):
            cp = sub.add_parser(name, help=help_, description=help_)
            cp.add_argument("--config", help="JSON config to start from (flags override it)")
            add_dataclass_args(cp, cls)
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    cls, fn, _ = COMMANDS[ns.group][ns.command]
    try:
        cfg = from_args(cls, ns)
    except (TypeError, ValueError) as e:
        print(f"robolearn {ns.group} {ns.command}: bad configuration: {e}", file=sys.stderr)
        return 2
    rc = fn(cfg)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
