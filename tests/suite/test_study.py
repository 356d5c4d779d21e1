"""`robolearn suite study` at tiny size: the whole pipeline (SSv2-layout clips -> prepare with the LM's tokenizer
-> V-Cond / V-Gen / R-MVP pretrained at equal compute -> the suite against random weights and scratch-cnn over 3
seeds -> template probe -> report), resumed after an interruption, and bad input (a corrupt clip is skipped and
reported; empty or unknown encoder lists and changed settings are refused before work is lost)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import study_toys

from robolearn.cli import main
from robolearn.suite.study import StudyConfig, StudyError, run_study

ARCHS = ["v-cond", "v-gen", "r-mvp"]


def _cfg(out: Path, corpus: Path, lm: Path, **kw) -> StudyConfig:
    base = dict(out=out, corpus=corpus, val_clips=8, image_size=32, frame_size=40, steps=4, batch=4, seeds=[0, 1, 2],
                scenarios=[t.name for t in study_toys.TOYS], suite_steps=5, probe_steps=30, language_model=str(lm),
                workers=0, progress=False)  # fmt: skip
    base.update(kw)
    return StudyConfig(**base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """24 train + 8 validation clips; clip 1005 (train) is corrupt."""
    root = study_toys.write_corpus(tmp_path_factory.mktemp("study") / "corpus")
    (root / "videos" / "1005.webm").write_bytes(b"not a webm file")
    return root


@pytest.fixture(scope="module")
def study(corpus, lm_dir, tmp_path_factory):
    """A study interrupted in the probe stage, then rerun to the end; (config, logs of both runs, pretrain
    checkpoint files with their mtimes after the first run)."""
    import robolearn.suite.study.probe as probe_module

    out = tmp_path_factory.mktemp("study") / "run"
    cfg = _cfg(out, corpus, lm_dir)
    first: list[str] = []
    real = probe_module.probe_encoders

    def killed(*a, **k):
        raise KeyboardInterrupt("killed during the probe")

    probe_module.probe_encoders = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(cfg, log=first.append)
    finally:
        probe_module.probe_encoders = real
    ckpts = {p: p.stat().st_mtime_ns for p in (out / "pretrain").glob("*/checkpoints/*/model.safetensors")}
    second: list[str] = []
    report = run_study(_cfg(out, corpus, lm_dir), log=second.append)
    return cfg, report, first, second, ckpts


def test_study_end_to_end(study):
    cfg, report, _, _, _ = study
    out = cfg.out
    assert report == out / "report.md" and (out / "report.html").is_file() and (out / "pretrain_loss.png").is_file()
    data = json.loads((out / "report.json").read_text())
    # equal compute: the same steps and batch for every encoder; V-Gen sees two frames per example
    pre = data["pretrain"]
    assert set(pre) == set(ARCHS)
    assert {p["steps"] for p in pre.values()} == {4} and {p["examples_seen"] for p in pre.values()} == {16}
    assert pre["v-gen"]["frames_seen"] == 2 * pre["v-cond"]["frames_seen"]
    assert all(Path(p["checkpoint"]).name == "step-00000004" and p["wall_s"] > 0 for p in pre.values())
    assert all(data["losses"][a]["first_loss"] is not None for a in ARCHS)
    # the suite ran every encoder (3 pretrained, the random-init control, scratch-cnn) on every scenario x seed
    values = data["values"]
    assert set(values) == set(cfg.scenarios)
    for sc in cfg.scenarios:
        assert set(values[sc]) == {*(f"{a} pretrained" for a in ARCHS), "v-cond random-init", "scratch-cnn"}
        assert all(set(v) == {"0", "1", "2"} for v in values[sc].values())
    assert data["suite"]["cells"] == len(cfg.scenarios) * 5 * 3
    # the probe: every pretrained encoder and the control, accuracy with an interval, on held-out clips only
    probe = data["probe"]
    assert probe["templates"] == 4 and probe["heldout_clips"] == 8 and probe["train_clips"] == 23
    assert set(probe["encoders"]) == {*(f"{a} pretrained" for a in ARCHS), "v-cond random-init"}
    for r in probe["encoders"].values():
        assert 0 <= r["ci95"][0] <= r["heldout_accuracy"] <= r["ci95"][1] <= 1
    # the hypothesis: refer claims (V-* vs R-MVP), affordance (R-MVP >= V-*), pretrained vs random per scenario
    claims = {c["claim"]: c for c in data["claims"]}
    assert "v-cond beats r-mvp on study-toy-refer" in claims
    assert "r-mvp is at least as good as v-gen on study-toy-affordance" in claims
    assert sum("beats random weights" in c for c in claims) == 3 * 2
    for c in claims.values():
        assert c["verdict"] in {"supported", "not supported", "not significant"}
        assert c["p"] >= 0.25  # 3 seeds: an exact sign-flip test cannot go lower
        if c["diff"] < 0 and "at least" not in c["claim"]:
            assert c["verdict"] == "not supported"
    md = report.read_text()
    assert "Hypothesis check" in md and "smallest possible p is 2/2^n (0.25 here)" in md
    assert "| v-cond random-init |" in md


def test_corrupt_clip_is_skipped_and_reported(study):
    cfg, report, _, _, _ = study
    data = json.loads((cfg.out / "report.json").read_text())
    assert [f["id"] for f in data["prepare"]["failed"]] == ["1005"]
    assert data["prepare"]["train"] == 23
    assert "Skipped 1 clip(s) that could not be decoded: 1005" in report.read_text()


def test_interrupted_study_resumes_without_redoing_work(study):
    cfg, _, first, second, ckpts = study
    assert any("pretrain-r-mvp: " in line for line in first) and not any("probe:" in line for line in first)
    for stage in ("prepare", "pretrain-v-cond", "pretrain-v-gen", "pretrain-r-mvp", "random-init-v-cond"):
        assert any(line.startswith(f"[study] {stage}: done before") for line in second), stage
    for stage in ("probe", "suite"):  # the interrupted stage and the one after it ran in the second run
        assert any(line.startswith(f"[study] {stage}: ") and "done before" not in line for line in second)
    assert ckpts and all(p.stat().st_mtime_ns == t for p, t in ckpts.items())  # pretraining was not redone


def test_changed_settings_are_refused(study, corpus, lm_dir):
    cfg = study[0]
    with pytest.raises(StudyError, match=r"pretrain-v-cond.*steps: 4 -> 5.*--overwrite"):
        run_study(_cfg(cfg.out, corpus, lm_dir, steps=5), log=lambda s: None)


def test_bad_encoder_lists_fail_before_work(tmp_path, corpus, lm_dir, capsys):
    with pytest.raises(StudyError, match="--encoders is empty"):
        run_study(_cfg(tmp_path / "a", corpus, lm_dir, encoders=[]))
    with pytest.raises(StudyError, match=r"unknown encoder 'v-cnod'.*did you mean v-cond"):
        run_study(_cfg(tmp_path / "b", corpus, lm_dir, encoders=["v-cnod", "r-mvp"]))
    with pytest.raises(StudyError, match="--random-init"):
        run_study(_cfg(tmp_path / "c", corpus, lm_dir, encoders=["r-mvp"], random_init=["v-cond"]))
    rc = main(["suite", "study", "--out", str(tmp_path / "d"), "--corpus", str(corpus), "--encoders", "bogus"])
    assert rc == 2 and "unknown encoder 'bogus'" in capsys.readouterr().err
    rc = main(["suite", "study", "--out", str(tmp_path / "e"), "--corpus", str(tmp_path / "nowhere")])
    assert rc == 2 and "no videos/ folder" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abcde")  # nothing was started
