"""The hyena head: FFT long convolution = direct convolution, causality of both mixers, shapes, history in
training (cached tokens) and in the runner, checkpoints, flags and bad config values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robolearn.cli import build_parser
from robolearn.config import from_args
from robolearn.policies import HyenaHeadConfig, PolicyConfig, build_policy, load_policy, save_policy
from robolearn.policies.hyena import CausalSelfAttention, HyenaOperator, causal_conv_direct, causal_conv_fft
from robolearn.policies.train import TrainConfig, history_index, train


@pytest.mark.parametrize("length", [1, 7, 64])
def test_fft_conv_equals_direct_conv(length):
    u, h = torch.randn(3, length, 5, dtype=torch.float64), torch.randn(length, 5, dtype=torch.float64)
    torch.testing.assert_close(causal_conv_fft(u, h), causal_conv_direct(u, h), rtol=1e-9, atol=1e-9)
    # and the direct form is the definition: y[t] = sum_{s<=t} h[t-s] u[s]
    t = length - 1
    assert torch.allclose(causal_conv_direct(u, h)[:, t], sum(h[t - s] * u[:, s] for s in range(length)))


def test_hyena_operator_uses_the_fft_path_exactly():
    op = HyenaOperator(16, max_len=32, order=2).double()
    u = torch.randn(2, 32, 16, dtype=torch.float64)
    torch.testing.assert_close(op(u), op(u, conv=causal_conv_direct))


@pytest.mark.parametrize("mixer", ["hyena", "attention"])
def test_mixers_are_causal(mixer):
    op = HyenaOperator(16, 40, order=2) if mixer == "hyena" else CausalSelfAttention(16, 40, 2)
    u = torch.randn(2, 40, 16)
    v = u.clone()
    v[:, 25:] += torch.randn(2, 15, 16) * 5
    a, b = op(u), op(v)
    torch.testing.assert_close(a[:, :25], b[:, :25])
    assert (a[:, 25:] - b[:, 25:]).abs().max() > 1e-3  # later inputs do matter for later outputs


def _policy(history: int = 8, mixer: str = "hyena", chunk: int = 2) -> torch.nn.Module:
    head = HyenaHeadConfig(history=history, hidden=32, layers=2, mixer=mixer, chunk=chunk, dropout=0.0)
    return build_policy(PolicyConfig(encoder="scratch-cnn", cameras=["exterior_1", "wrist"], image_size=32, head=head))


@pytest.mark.parametrize("mixer", ["hyena", "attention"])
def test_head_shapes_and_causality_over_frames(mixer):
    policy = _policy(mixer=mixer).eval()
    b, t, n, d = 2, 8, 5, policy.backbone.embed_dim
    tokens = [torch.randn(b, t, n, d) for _ in range(2)]
    proprio = torch.randn(b, t, 15)
    assert policy.forward_tokens(tokens, proprio).shape == (b, 2, 7)
    assert policy.forward_tokens([x[:, -1] for x in tokens], proprio[:, -1]).shape == (b, 2, 7)  # one frame
    seq = policy.head.sequence(tokens, proprio)
    later = [x.clone() for x in tokens]
    later[1][:, 5:] += 3.0
    torch.testing.assert_close(policy.head.sequence(later, proprio)[:, :5], seq[:, :5])
    # the action reads the last frame, so it sees every earlier one
    assert not torch.allclose(policy.forward_tokens(later, proprio), policy.forward_tokens(tokens, proprio))
    with pytest.raises(ValueError, match="at most 8"):
        policy.forward_tokens([torch.randn(1, 9, n, d)] * 2, torch.randn(1, 9, 15))


def test_history_index_pads_with_the_first_frame_of_the_episode():
    steps = torch.tensor([0, 1, 2, 3, 0, 1])  # two episodes of 4 and 2 steps, samples in order
    idx = torch.tensor([3, 1, 5, 4])
    assert history_index(idx, steps, 3).tolist() == [[1, 2, 3], [0, 0, 1], [4, 4, 5], [4, 4, 4]]


def test_runner_keeps_each_envs_history_and_matches_a_direct_forward():
    torch.manual_seed(0)
    policy = _policy(history=4, chunk=1).eval()
    rng = np.random.default_rng(0)
    obs = [
        {
            "images": {c: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for c in ("exterior_1", "wrist")},
            "proprio": rng.normal(size=15).astype(np.float32),
            "language": "press",
        }
        for _ in range(6)
    ]
    runner = policy.runner(2)
    acts = [runner.act_envs([0, 1], [o, obs[0]])[0] for o in obs]  # env 1 sees the same frame throughout
    with torch.no_grad():
        imgs = {
            c: torch.from_numpy(np.stack([o["images"][c] for o in obs])).permute(0, 3, 1, 2) for c in obs[0]["images"]
        }
        tokens = policy.encode(imgs)
        pn = policy.normalize_proprio(torch.from_numpy(np.stack([o["proprio"] for o in obs])))
        window = [0, 0, 0, 1]  # step 1: the first frame repeated, as the loader pads
        want = policy.unnormalize_action(policy.forward_tokens([t[window][None] for t in tokens], pn[window][None]))
        np.testing.assert_allclose(acts[1], want[0, 0].numpy(), atol=1e-5)
        window = [2, 3, 4, 5]  # step 5: the last 4 frames
        want = policy.unnormalize_action(policy.forward_tokens([t[window][None] for t in tokens], pn[window][None]))
        np.testing.assert_allclose(acts[5], want[0, 0].numpy(), atol=1e-5)
    assert not np.allclose(acts[1], acts[5])
    runner.reset(0)
    np.testing.assert_allclose(runner.act_envs([0], [obs[0]])[0], acts[0], atol=1e-5)  # history forgotten


def test_hyena_policy_trains_on_cached_histories_and_reloads(demos, lm_dir, tmp_path):
    head = HyenaHeadConfig(history=6, hidden=32, layers=1, dropout=0.0)
    policy = PolicyConfig(encoder="v-cond-tiny", language_model=str(lm_dir), cameras=[], head=head)
    cfg = TrainConfig(
        data=[demos], out=tmp_path / "run", policy=policy, steps=60, batch_size=16, log_every=10, lr=3e-3,
        feature_cache="none", progress=False,
    )  # fmt: skip
    r = train(cfg)
    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["loss"] < 0.7 * hist[0]["loss"] and r.val_loss is not None
    loaded = load_policy(tmp_path / "run")
    assert loaded.config.head == head and loaded.config.history == 6
    rng = np.random.default_rng(1)
    obs = {
        "images": {c: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for c in loaded.config.cameras},
        "proprio": rng.normal(size=15).astype(np.float32),
        "language": "",
    }
    save_policy(loaded, tmp_path / "again")
    again = load_policy(tmp_path / "again")
    a, b = loaded.runner(), again.runner()
    for _ in range(3):
        np.testing.assert_allclose(a.act(obs), b.act(obs), atol=1e-6)


def test_hyena_flags_and_bad_values():
    ns = build_parser().parse_args(
        ["train", "--policy.head", "hyena", "--policy.head.history", "64", "--policy.head.mixer", "attention",
         "--policy.head.order", "3", "--policy.head.filter-dim", "16"]
    )  # fmt: skip
    c = from_args(TrainConfig, ns)
    assert c.policy.head == HyenaHeadConfig(history=64, mixer="attention", order=3, filter_dim=16)
    with pytest.raises(ValueError, match="mixer must be 'hyena' or 'attention', got 'lstm'"):
        PolicyConfig(head=HyenaHeadConfig(mixer="lstm")).validate()
    with pytest.raises(ValueError, match="history=0"):
        PolicyConfig(head=HyenaHeadConfig(history=0)).validate()
    with pytest.raises(ValueError, match="decay_min <= decay_max"):
        PolicyConfig(head=HyenaHeadConfig(decay_min=5.0, decay_max=1.0)).validate()
