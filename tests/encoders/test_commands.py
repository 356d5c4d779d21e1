"""`robolearn encoders list | convert | info` (called through their functions)."""

from __future__ import annotations

import json

import torch

from robolearn.encoders import build, load
from robolearn.encoders.commands import ConvertCommand, InfoCommand, ListCommand, convert, info, list_models
from robolearn.encoders.reference import to_reference_state_dict


def test_list_and_info(capsys):
    assert list_models(ListCommand()) == 0
    out = capsys.readouterr().out
    assert "v-cond-base" in out and "ResNet-50" in out and "tiny" not in out
    assert info(InfoCommand(source="r-mvp-tiny")) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == "r-mvp"


def test_convert_reference_release(tmp_path, lm_dir, capsys):
    torch.manual_seed(0)
    model = build("r-mvp-tiny").eval()
    c = model.config
    src = tmp_path / "release"
    src.mkdir()
    (src / "r-mvp-config.json").write_text(
        json.dumps(
            dict(
                resolution=c.image_size,
                patch_size=c.patch_size,
                encoder_depth=c.encoder_depth,
                encoder_embed_dim=c.encoder_dim,
                encoder_n_heads=c.encoder_heads,
                decoder_depth=c.decoder_depth,
                decoder_embed_dim=c.decoder_dim,
                decoder_n_heads=c.decoder_heads,
                optimizer="adamw",
                base_lr=1.5e-4,
            )
        )
    )
    torch.save([to_reference_state_dict(model.state_dict(), "r-mvp"), {}], src / "r-mvp.pt")
    assert convert(ConvertCommand(source=src, out=tmp_path / "ours")) == 0
    assert "voltron_compat=True" in capsys.readouterr().out
    converted, _ = load(tmp_path / "ours")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(converted(x, mode="cls"), model(x, mode="cls"), atol=1e-6)
