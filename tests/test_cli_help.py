"""Every command's --help renders (argparse %-formats help text, so a literal % must not break it)."""

import pytest

from robolearn.cli import build_parser
from robolearn.config import COMMANDS


def _argvs():
    build_parser()
    yield []
    for group, cmds in sorted(COMMANDS.items()):
        if len(cmds) > 1:
            yield [group]  # lists the stage's commands with their help lines
        for name in sorted(cmds):
            yield [group] if name == "" and len(cmds) == 1 else [group, name or "run"]


@pytest.mark.parametrize("argv", list(_argvs()), ids=lambda a: " ".join(a))
def test_help_renders(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: robolearn" in out
    assert "%%" not in out  # a doubled % means help text was escaped where argparse does not format it
