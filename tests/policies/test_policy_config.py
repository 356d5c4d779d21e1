"""PolicyConfig / TrainConfig layout: every head field is a flag, bad flags are refused, older flat configs load."""

from __future__ import annotations

import json

import pytest

from robolearn.cli import build_parser, main
from robolearn.config import from_args, load_config, save_config
from robolearn.policies import ChunkHeadConfig, MapMlpHeadConfig, PolicyConfig
from robolearn.policies.heads import build_head
from robolearn.policies.train import TrainConfig


def _parse(*flags: str) -> TrainConfig:
    ns = build_parser().parse_args(["train", *flags])
    return from_args(TrainConfig, ns)


def test_every_head_field_is_a_flag():
    c = _parse(
        "--policy.head",
        "map-mlp",
        "--policy.head.chunk",
        "3",
        "--policy.head.hidden",
        "48",
        "--policy.head.layers",
        "4",
        "--policy.head.dropout",
        "0.25",
        "--policy.head.ensemble-decay",
        "0.3",
        "--policy.head.n-latents",
        "2",
    )
    assert c.policy.head == MapMlpHeadConfig(
        chunk=3, hidden=48, layers=4, dropout=0.25, ensemble_decay=0.3, n_latents=2
    )
    c = _parse("--policy.head", "chunk", "--policy.head.memory-latents", "4", "--policy.head.layers", "1")
    assert c.policy.head == ChunkHeadConfig(memory_latents=4, layers=1) and c.policy.chunk == 8
    # the defaults: map-mlp, and every camera of the data (cameras left empty until training fills them)
    d = _parse()
    assert d.policy.head == MapMlpHeadConfig() and d.policy.cameras == [] and d.policy.chunk == 1
    assert _parse("--policy.proprio-keys").policy.proprio_keys == []
    # every field of every head config (also ones added later) has a flag
    for cls in (MapMlpHeadConfig, ChunkHeadConfig):
        for name in cls.__dataclass_fields__:
            if name != "name":
                c = _parse("--policy.head", cls.name, f"--policy.head.{name.replace('_', '-')}", "1")
                assert getattr(c.policy.head, name) == 1, name


def test_bad_head_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        _parse("--policy.head.bogus", "1")  # an unknown nested flag
    assert "unrecognized arguments: --policy.head.bogus" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not apply to head 'map-mlp'"):
        _parse("--policy.head.memory-latents", "4")  # a chunk-head field on the default map-mlp head
    with pytest.raises(ValueError, match="unknown head 'mlp'; expected one of map-mlp, chunk"):
        _parse("--policy.head", "mlp")
    assert main(["train", "--policy.head", "chunk", "--policy.head.n-latents", "2"]) == 2
    assert "does not apply to head 'chunk'" in capsys.readouterr().err


def test_unknown_head_name_is_a_value_error_naming_the_known_heads():
    class Other:
        name = "transformer"

    cfg = PolicyConfig(encoder="scratch-cnn")
    cfg.head = Other()  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"unknown head 'transformer'; known heads: map-mlp, chunk"):
        build_head(cfg, 64, 4)


def test_config_roundtrip_and_switching_heads(tmp_path):
    c = _parse("--policy.head", "chunk", "--policy.head.chunk", "5", "--policy.encoder", "scratch-cnn")
    path = save_config(c, tmp_path, "train")
    saved = json.loads(path.read_text())["values"]
    assert saved["policy"]["head"] == {
        "name": "chunk",
        "chunk": 5,
        "hidden": 256,
        "layers": 2,
        "dropout": 0.1,
        "ensemble_decay": 0.1,
        "memory_latents": 8,
    }
    assert load_config(TrainConfig, path) == c
    # --config then flags: the same head keeps the file's fields; another head starts from its defaults
    ns = build_parser().parse_args(["train", "--config", str(path), "--policy.head.layers", "3"])
    assert from_args(TrainConfig, ns).policy.head == ChunkHeadConfig(chunk=5, layers=3)
    ns = build_parser().parse_args(["train", "--config", str(path), "--policy.head", "map-mlp"])
    assert from_args(TrainConfig, ns).policy.head == MapMlpHeadConfig()
    assert PolicyConfig.from_dict(c.policy.to_dict()) == c.policy


def test_old_flat_configs_load(tmp_path):
    # a policy checkpoint's "policy" dict from before the head was nested
    flat = {
        **{k: v for k, v in PolicyConfig().to_dict().items() if k != "head"},
        "head": "chunk",
        "chunk": 4,
        "hidden": 32,
        "n_latents": 1,
        "memory_latents": 6,
        "head_layers": 3,
        "dropout": 0.2,
        "ensemble_decay": 0.5,
    }
    pc = PolicyConfig.from_dict(flat)
    assert pc.head == ChunkHeadConfig(chunk=4, hidden=32, memory_latents=6, layers=3, dropout=0.2, ensemble_decay=0.5)
    assert PolicyConfig.from_dict({**flat, "head": "map-mlp"}).head == MapMlpHeadConfig(
        chunk=4, hidden=32, n_latents=1, layers=3, dropout=0.2, ensemble_decay=0.5
    )
    with pytest.raises(ValueError, match="unknown head 'mlp'"):
        PolicyConfig.from_dict({**flat, "head": "mlp"})
    # a run folder's train.config.json from the flat TrainConfig
    old = {
        "data": ["demos"],
        "query": ["success=1"],
        "out": "runs/bc",
        "encoder": "v-cond-tiny",
        "encoder_image_size": 32,
        "language_model": "",
        "mode": "visual",
        "freeze": True,
        "unfreeze_last": 0,
        "head": "chunk",
        "chunk": 0,
        "cameras": ["wrist"],
        "image_size": 48,
        "proprio": False,
        "hidden": 64,
        "steps": 7,
        "seed": 3,
    }
    (tmp_path / "train.config.json").write_text(
        json.dumps({"class": "robolearn.policies.train.TrainConfig", "values": old})
    )
    c = load_config(TrainConfig, tmp_path / "train.config.json")
    assert c.steps == 7 and c.seed == 3 and [str(d) for d in c.data] == ["demos"]
    assert c.policy == PolicyConfig(
        encoder="v-cond-tiny",
        encoder_overrides={"image_size": 32},
        cameras=["wrist"],
        image_size=48,
        proprio_keys=[],
        head=ChunkHeadConfig(hidden=64),
    )
    ns = build_parser().parse_args(["train", "--config", str(tmp_path / "train.config.json"), "--steps", "9"])
    c2 = from_args(TrainConfig, ns)
    assert c2.steps == 9 and c2.policy.head == ChunkHeadConfig(hidden=64) and c2.policy.language_model is None
