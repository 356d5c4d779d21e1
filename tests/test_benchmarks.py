"""Every benchmark script imports and parses --help in this venv: a benchmark that needs an undeclared package
(pyarrow once) fails here, not first on a fresh machine's `make bench`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__"' in p.read_text())


def test_benchmarks_found():
    assert len(SCRIPTS) >= 7, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_help(script: Path):
    r = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300, cwd=BENCHMARKS.parent
    )
    assert r.returncode == 0, f"{script.name} --help failed:\n{r.stderr[-3000:]}"
    assert "usage:" in r.stdout, r.stdout[:500]
