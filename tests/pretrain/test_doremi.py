"""DoReMi: domains, the group-DRO weight update, per-example losses, `robolearn pretrain reweight` and
`robolearn pretrain --domain-weights` end to end, and bad weights files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robolearn.cli import main
from robolearn.pretrain.doremi.domains import (
    DomainWeightsError,
    read_weights,
    split_domains,
    weighted_domains,
    write_weights,
)
from robolearn.pretrain.doremi.dro import excess_by_domain, update_weights, weighted_loss
from robolearn.pretrain.doremi.losses import per_example_losses
from robolearn.pretrain.doremi.synthetic import SyntheticSource


def test_excess_is_clipped_per_example_and_averaged_per_domain() -> None:
    proxy = torch.tensor([1.0, 3.0, 2.0, 2.0])
    ref = torch.tensor([2.0, 1.0, 1.0, 1.5])
    dom = torch.tensor([0, 0, 1, 1])
    # domain 0: max(-1, 0) and 2 -> 1.0 (not the clipped mean difference, 0.5); domain 1: 1 and 0.5 -> 0.75
    assert excess_by_domain(proxy, ref, dom, 3).tolist() == [1.0, 0.75, 0.0]


def test_weights_move_towards_excess_loss_and_stay_smoothed() -> None:
    alpha = torch.full((3,), 1 / 3, dtype=torch.float64)
    new = update_weights(alpha, torch.tensor([0.0, 1.0, 0.0]), eta=1.0, smoothing=0.0)
    e = torch.e
    assert torch.allclose(new, torch.tensor([1, e, 1], dtype=torch.float64) / (2 + e))
    for _ in range(200):
        alpha = update_weights(alpha, torch.tensor([0.0, 5.0, 0.0]), eta=1.0, smoothing=0.03)
    assert float(alpha.sum()) == pytest.approx(1.0) and float(alpha.min()) >= 0.01 - 1e-12
    loss = weighted_loss(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), torch.tensor([0.5, 0.3, 0.2]))
    assert float(loss) == pytest.approx(0.5 * 2 + 0.2 * 5)


@pytest.mark.parametrize("model_id", ["r-mvp-tiny", "v-cond-tiny"])
def test_per_example_losses_are_the_examples_own_losses(model_id: str) -> None:
    from robolearn.encoders import build

    torch.manual_seed(0)
    model = build(model_id, language_model="unused", image_size=32)
    b = 3
    batch = {
        "images": torch.randn(b, 3, 32, 32),
        "lang_ids": torch.ones(b, 4, dtype=torch.long),
        "lang_mask": torch.ones(b, 4, dtype=torch.long),
        "lang_features": torch.randn(b, 4, model.config.language_dim),
        "mask_noise": torch.rand(b, model.config.n_patches),
    }
    per = per_example_losses(model, batch)
    assert per.shape == (b,) and per.requires_grad
    for i in range(b):  # each example alone, same mask: the model's own loss
        alone, _ = model({k: v[i : i + 1] for k, v in batch.items()})
        assert float(per[i].detach()) == pytest.approx(float(alone), rel=1e-4)
    with pytest.raises(KeyError, match="mask_noise"):
        per_example_losses(model, {k: v for k, v in batch.items() if k != "mask_noise"})


def test_models_with_other_losses_are_refused() -> None:
    from robolearn.encoders import build

    with pytest.raises(ValueError, match="reconstruction-only"):
        per_example_losses(build("v-gen-tiny", language_model="unused", image_size=32), {})


def test_split_domains_and_the_weights_file(tmp_path: Path, episodes_root: Path, lm_dir: Path) -> None:
    from robolearn.pretrain.episodes_source import EpisodeSource

    a, b = SyntheticSource("ramp", 6), SyntheticSource("stripes", 4)
    doms = split_domains([a, b])
    assert [d.name for d in doms] == ["ramp", "stripes"] and len(doms[1]) == 4
    assert doms[1].read_frames(2, [0])[0].tobytes() == b.read_frames(2, [0])[0].tobytes()
    eps = EpisodeSource(episodes_root, tokenizer=str(lm_dir))
    by_house = split_domains([eps], "household")
    assert [d.name for d in by_house] == ["episodes:house_0", "episodes:house_1"]
    assert sum(len(d) for d in by_house) == len(eps)
    with pytest.raises(ValueError, match="attrs/no_such_key"):
        split_domains([eps], "no_such_key")

    path = write_weights(tmp_path / "w.json", {"ramp": 0.25, "stripes": 0.75}, "source")
    assert read_weights(path) == ("source", {"ramp": 0.25, "stripes": 0.75})
    assert [(d.name, w) for d, w in weighted_domains([a, b], path)] == [("ramp", 0.25), ("stripes", 0.75)]
    write_weights(tmp_path / "other.json", {"ramp": 1.0, "blobs": 1.0}, "source")
    with pytest.raises(DomainWeightsError, match=r"other.json: .*no weight for \['stripes'\].*\['blobs'\]"):
        weighted_domains([a, b], tmp_path / "other.json")
    (tmp_path / "neg.json").write_text(json.dumps({**json.loads(path.read_text()), "weights": {"ramp": -1}}))
    with pytest.raises(DomainWeightsError, match="neg.json: weights must be numbers >= 0"):
        read_weights(tmp_path / "neg.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DomainWeightsError, match="bad.json: not valid JSON"):
        read_weights(tmp_path / "bad.json")


def test_reweight_then_pretrain_with_the_weights(
    prepared: Path, episodes_root: Path, lm_dir: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "doremi"
    data = ["--data", str(prepared), "--episodes", str(episodes_root), "--language-model", str(lm_dir)]
    common = ["--model", "r-mvp-tiny", *data, "--image-size", "32"]
    rc = main(
        ["pretrain", "reweight", *common, "--run-dir", str(run), "--steps", "4", "--batch-per-domain", "2"]
        + ["--warmup-steps", "1", "--log-every", "2"]
    )
    assert rc == 0
    doc = json.loads((run / "domain_weights.json").read_text())
    w = doc["weights"]
    assert set(w) == {"ssv2", "episodes"} and sum(w.values()) == pytest.approx(1.0)
    assert doc["reference_weights"] == {"ssv2": 0.5, "episodes": 0.5}
    proxy = doc["history"]["proxy"]
    assert [h["step"] for h in proxy] == [2, 4] and all(len(h["excess"]) == 2 for h in proxy)
    assert (run / "reweight.config.json").exists() and (run / "reference" / "model.safetensors").exists()
    assert "domain_weights.json" in capsys.readouterr().out

    train = ["--image-size", "32", "--train.effective-batch", "4", "--train.device-batch", "2"]
    train += ["--train.num-workers", "0", "--no-train.progress", "--train.max-steps", "2", "--no-validate"]
    out = tmp_path / "main"
    rc = main(
        ["pretrain", "--model", "r-mvp-tiny", *data, "--domain-weights", str(run / "domain_weights.json")]
        + ["--run-dir", str(out), *train]
    )
    assert rc == 0 and (out / "checkpoints" / "step-00000002").is_dir()
    saved = json.loads((out / "pretrain.config.json").read_text())["values"]
    assert saved["domain_weights"] == str(run / "domain_weights.json")

    bad = tmp_path / "bad.json"
    write_weights(bad, {"ssv2": 1.0}, "source")  # no weight for the episodes domain
    rc = main(
        [
            "pretrain",
            "--model",
            "r-mvp-tiny",
            *data,
            "--domain-weights",
            str(bad),
            "--run-dir",
            str(tmp_path / "bad-run"),
            *train,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}: weights do not match" in err and "'episodes'" in err
    assert not (tmp_path / "bad-run" / "checkpoints").exists()
