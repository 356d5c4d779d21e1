"""`robolearn pretrain` end to end on prepared clips + episodes; the checkpoint loads as an encoder; a MAP
probe on the pretrained encoder beats the same probe on a random-init encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robolearn.cli import main
from robolearn.pretrain.checkpoint import latest_checkpoint

TINY = [
    "--image-size",
    "32",
    "--train.effective-batch",
    "4",
    "--train.device-batch",
    "2",
    "--train.num-workers",
    "0",
    "--no-train.progress",
    "--train.log-every",
    "1",
    "--train.warmup-epochs",
    "0.5",
    "--train.lr",
    "1e-3",
]


def test_pretrain_command_trains_checkpoints_and_loads(
    prepared: Path, episodes_root: Path, lm_dir: Path, tmp_path: Path
) -> None:
    from robolearn.encoders import load

    run = tmp_path / "run"
    rc = main(
        [
            "pretrain",
            "--model",
            "v-cond-tiny",
            "--data",
            f"{prepared}:0.7",
            "--episodes",
            f"{episodes_root}:0.3",
            "--language-model",
            str(lm_dir),
            "--run-dir",
            str(run),
            "--train.max-epochs",
            "2",
            *TINY,
        ]
    )
    assert rc == 0
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and (ckpt / "config.json").exists()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in x for x in lines) and any("val_loss" in x for x in lines)
    model, preprocess = load(ckpt, language_model=str(lm_dir))
    feats = model(torch.zeros(2, 3, 32, 32), "open the drawer", mode="visual")
    assert feats.shape[0] == 2 and torch.isfinite(feats).all()
    assert (run / "pretrain.config.json").exists()
    card = _check_encoder_card(ckpt, prepared, episodes_root, lm_dir, lines)
    # Running the same command again resumes (nothing left to do: max_epochs reached) instead of restarting.
    assert (
        main(
            [
                "pretrain",
                "--model",
                "v-cond-tiny",
                "--data",
                f"{prepared}:0.7",
                "--episodes",
                f"{episodes_root}:0.3",
                "--language-model",
                str(lm_dir),
                "--run-dir",
                str(run),
                "--train.max-epochs",
                "2",
                *TINY,
            ]
        )
        == 0
    )
    assert latest_checkpoint(run) == ckpt
    assert json.loads((ckpt / "lineage.json").read_text()) == card  # nothing trained: the card is kept


def _check_encoder_card(ckpt: Path, prepared: Path, episodes_root: Path, lm_dir: Path, lines: list[dict]) -> dict:
    """The checkpoint's card: its sources by their cards' ids, the LM, and the run's last losses."""
    from robolearn.lineage import build_graph, read_card

    card = read_card(ckpt)
    by_path = {i["path"]: i for i in card["inputs"]}
    shards = read_card(prepared)  # prepared from Python (prepare_ssv2): its card has the function's arguments
    assert by_path[str(prepared.resolve())]["id"] == shards["id"] and shards["config"]["val_clips"] == 2
    assert shards["figures"]["val"] == 2 and shards["config"]["source"] == "ssv2"
    assert by_path[str(episodes_root.resolve())]["id"] == read_card(episodes_root)["id"]
    assert by_path[str(lm_dir.resolve())]["kind"] == "lm" and card["kind"] == "encoder"
    vals = [x["val_loss"] for x in lines if "val_loss" in x]
    assert card["figures"]["val_loss_last"] == pytest.approx(vals[-1]) and card["figures"]["train_loss_last"] > 0
    assert card["figures"]["steps"] == max(x["step"] for x in lines if "step" in x)
    assert not build_graph(ckpt).problems
    return json.loads((ckpt / "lineage.json").read_text())


def test_pretrain_needs_data(tmp_path: Path, lm_dir: Path) -> None:
    with pytest.raises(ValueError, match="no training data"):
        main(["pretrain", "--model", "v-cond-tiny", "--language-model", str(lm_dir), "--run-dir", str(tmp_path)])


@pytest.mark.parametrize("model", ["v-dual-tiny", "v-gen-tiny", "r-mvp-tiny", "r-r3m-vit-tiny", "r-r3m-rn50-tiny"])
def test_every_variant_trains_checkpoints_resumes_and_extracts(
    model: str, prepared: Path, lm_dir: Path, tmp_path: Path
) -> None:
    from robolearn.encoders import load

    run = tmp_path / "run"
    args = [
        "pretrain",
        "--model",
        model,
        "--data",
        str(prepared),
        "--language-model",
        str(lm_dir),
        "--run-dir",
        str(run),
        "--train.max-epochs",
        "3",
        "--no-validate",
        *TINY,
    ]
    assert main([*args, "--train.max-steps", "2"]) == 0  # stops early, like a killed run
    assert latest_checkpoint(run).name == "step-00000002"
    assert main(args) == 0  # resumes and finishes
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert lines[-1]["step"] > 2 and all(torch.isfinite(torch.tensor(x["loss"])) for x in lines)
    encoder, _ = load(latest_checkpoint(run), language_model=str(lm_dir))
    if model.startswith("r-mvp"):
        feats = encoder(torch.rand(2, 3, 32, 32), mode="cls")
    elif "r3m" in model:
        feats = encoder(torch.rand(2, 3, 32, 32) * 255)
    else:  # two-frame Voltron models: (initial frame, frame k)
        feats = encoder(torch.rand(2, 2, 3, 32, 32), "open the drawer", mode="multimodal")
    assert feats.shape[0] == 2 and torch.isfinite(feats).all()


def test_torchrun_two_processes_with_the_real_command(prepared: Path, lm_dir: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "robolearn.pretrain",
        "--model",
        "v-cond-tiny",
        "--data",
        str(prepared),
        "--language-model",
        str(lm_dir),
        "--run-dir",
        str(run),
        "--train.max-epochs",
        "2",
        "--train.compile",
        *TINY,
    ]
    # Compiled under DDP (eager DDP: tests/pretrain/test_trainer.py); each run compiles from an empty cache.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    state = torch.load(latest_checkpoint(run) / "state.pt", weights_only=False)
    assert state["world_size"] == 2 and (latest_checkpoint(run) / "rng-rank1.pt").exists()


def test_compiled_training_matches_eager_and_checkpoints_load(prepared: Path, lm_dir: Path, tmp_path: Path) -> None:
    """--train.compile (torch.compile) gives the eager loss sequence (same masks) up to float reordering; its
    checkpoints hold the plain module's keys (they load as an encoder)."""
    from robolearn.encoders import load

    def run(name: str, *extra: str) -> list[float]:
        out = tmp_path / name
        assert (
            main(
                [
                    "pretrain",
                    "--model",
                    "v-cond-tiny",
                    "--data",
                    str(prepared),
                    "--language-model",
                    str(lm_dir),
                    "--run-dir",
                    str(out),
                    "--train.max-steps",
                    "4",
                    *TINY,
                    *extra,
                ]
            )
            == 0
        )
        lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return [x["loss"] for x in lines if "loss" in x]

    eager, compiled = run("eager"), run("compiled", "--train.compile")
    assert len(eager) == len(compiled) == 4
    assert compiled == pytest.approx(eager, rel=1e-4)  # same masks: only float reordering differs
    encoder, _ = load(latest_checkpoint(tmp_path / "compiled"), language_model=str(lm_dir))
    assert torch.isfinite(encoder(torch.rand(2, 3, 32, 32), "open the drawer", mode="visual")).all()
