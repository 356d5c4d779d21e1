"""The hyena head against attention: step time and memory vs history length, and success on a memory task.

    OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl .venv/bin/python benchmarks/hyena.py [--lengths 8 32 128 512 1024]
        [--repeats 3] [--demos 40] [--steps 400] [--episodes 20] [--skip-task]

1. Scaling. The `hyena` head (robolearn.policies.hyena.HistoryHead) with mixer=hyena and with mixer=attention
   (causal softmax self-attention, learned positions: same width, depth, MLPs, MAP pooling and read-out), on
   random frame tokens (batch --batch, one camera of --tokens tokens x 64, proprio 15): one training step
   (forward + MSE + backward) per history length, the two mixers alternating, median of --repeats;
   then the mixer blocks alone, without the per-frame pooling (--mixer-lengths, up to 4096). Memory:
   the bytes of the tensors autograd saves for the backward pass (activation memory, what grows with the
   history; measured with torch.autograd.graph.saved_tensors_hooks, exact and the same on any device).
2. Memory task. Expert demos of `button-memory` (a lamp shows which of two identical buttons to press for the
   first 6 steps, then goes dark; the expert waits until then), a frozen random-init V-Cond-tiny (32 px,
   tokens cached), then three heads trained the same way: map-mlp (no history), hyena (history --history)
   and attention (same history). Success +- 95% Wilson CI over --episodes held-out episodes (same seeds).

Ends with one JSON line of figures and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from robolearn.policies import HyenaHeadConfig, MapMlpHeadConfig, PolicyConfig  # noqa: E402
from robolearn.policies.hyena import HistoryHead, MixerBlock, build_mixer  # noqa: E402

TASK, CAMS = "button-memory", ("exterior_1",)
SCENES = ((0, 0), (1, 1))  # demos and evaluation (held-out seeds) in the same two scenes


# ----------------------------------------------------------------------------------------- 1. scaling
def _head(mixer: str, length: int, hidden: int) -> HistoryHead:
    cfg = PolicyConfig(
        cameras=list(CAMS), proprio_dim=15, head=HyenaHeadConfig(history=length, hidden=hidden, mixer=mixer)
    )
    return HistoryHead(cfg, 64, 4)


class _Mixers(torch.nn.Module):
    """The head's temporal part alone: `layers` MixerBlocks on [B, L, hidden] frame tokens."""

    def __init__(self, mixer: str, length: int, hidden: int, layers: int = 2) -> None:
        super().__init__()
        h = HyenaHeadConfig(history=length, hidden=hidden, mixer=mixer)
        self.blocks = torch.nn.Sequential(
            *[MixerBlock(build_mixer(mixer, hidden, length, h), hidden, 0.0) for _ in range(layers)]
        )

    def forward(self, tokens: list[torch.Tensor], proprio: torch.Tensor) -> torch.Tensor:
        return self.blocks(tokens[0])[:, -1:, :7]


def _step(
    head: torch.nn.Module, tokens: torch.Tensor, proprio: torch.Tensor, target: torch.Tensor
) -> tuple[float, int]:
    """One forward + backward: (seconds, bytes saved for backward)."""
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    head.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.mse_loss(head([tokens], proprio), target)
    loss.backward()
    return time.perf_counter() - t0, saved[0]


def scaling(lengths: list[int], repeats: int, batch: int, n_tokens: int, hidden: int, part: str) -> list[dict]:
    """Rows of step time and saved memory per length; part 'head' (the whole head) or 'mixer' (blocks only)."""
    rows = []
    for length in lengths:
        torch.manual_seed(0)
        if part == "head":
            heads = {m: _head(m, length, hidden) for m in ("hyena", "attention")}
            tokens = torch.randn(batch, length, n_tokens, 64)
        else:
            heads = {m: _Mixers(m, length, hidden) for m in ("hyena", "attention")}
            tokens = torch.randn(batch, length, hidden)
        proprio = torch.randn(batch, length, 15)
        target = torch.randn(batch, 1, 7)
        times: dict[str, list[float]] = {m: [] for m in heads}
        mem: dict[str, int] = {}
        for m in heads:  # warm-up
            _step(heads[m], tokens, proprio, target)
        for r in range(repeats):
            for m in ("hyena", "attention") if r % 2 == 0 else ("attention", "hyena"):
                s, b = _step(heads[m], tokens, proprio, target)
                times[m].append(s)
                mem[m] = b
        row: dict = {"part": part, "history": length}
        for m in heads:
            row[f"{m}_ms"] = round(1000 * statistics.median(times[m]), 2)
            row[f"{m}_saved_mb"] = round(mem[m] / 2**20, 2)
        row["time_ratio_attention_over_hyena"] = round(row["attention_ms"] / row["hyena_ms"], 3)
        row["memory_ratio_attention_over_hyena"] = round(row["attention_saved_mb"] / row["hyena_saved_mb"], 3)
        rows.append(row)
        print(
            f"{part:>5} {length:>7} | {row['hyena_ms']:>9.1f} {row['attention_ms']:>9.1f}"
            f" {row['time_ratio_attention_over_hyena']:>6.2f} | {row['hyena_saved_mb']:>9.1f}"
            f" {row['attention_saved_mb']:>9.1f}"
            f" {row['memory_ratio_attention_over_hyena']:>6.2f}",
            flush=True,
        )
    return rows


# ----------------------------------------------------------------------------------------- 2. memory task
def _rollouts(policy, episodes: int, max_steps: int, seed0: int) -> list[bool]:
    from robolearn.envs import make

    env = make(f"household/{TASK}", image_size=(32, 32), cameras=CAMS, max_steps=max_steps, scenes=list(SCENES))
    runner, out = policy.eval().runner(), []
    for i in range(episodes):
        obs, info = env.reset(seed=seed0 + i)
        runner.reset()
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(runner.act(obs))
            done = term or trunc
        out.append(bool(info["success"]))
    env.close()
    return out


def memory_task(args, work: Path) -> list[dict]:
    from robolearn.collection.expert_demos import record_expert_demos
    from robolearn.encoders.offline import write_language_model
    from robolearn.eval.metrics import wilson_interval
    from robolearn.policies import load_policy
    from robolearn.policies.train import TrainConfig, train

    t0 = time.perf_counter()
    lm = write_language_model(work / "lm", vocab_size=1000, dim=32, layers=1, heads=2)
    scenes = list(SCENES)
    with contextlib.redirect_stdout(io.StringIO()):  # the station's per-episode log
        record_expert_demos(work / "demos", TASK, scenes, -(-args.demos // len(scenes)), CAMS, 32, noise=0.05)
    print(f"recorded {args.demos} demos in {time.perf_counter() - t0:.0f} s", flush=True)
    heads = {
        "map-mlp (no history)": MapMlpHeadConfig(hidden=128, dropout=0.0),
        f"hyena (history {args.history})": HyenaHeadConfig(history=args.history, dropout=0.0, layers=2),
        f"attention (history {args.history})": HyenaHeadConfig(
            history=args.history, dropout=0.0, layers=2, mixer="attention"
        ),
    }
    rows = []
    for name, head in heads.items():
        pc = PolicyConfig(encoder="v-cond-tiny", language_model=str(lm), cameras=list(CAMS), head=head)
        out = work / "runs" / name.split()[0]
        t1 = time.perf_counter()
        cfg = TrainConfig(
            data=[work / "demos"],
            out=out,
            policy=pc,
            steps=args.steps,
            batch_size=32,
            lr=1e-3,
            val_fraction=0.0,
            log_every=50,
            feature_cache=str(work / "cache"),
            progress=False,
            seed=args.seed,
        )
        r = train(cfg)
        train_s = time.perf_counter() - t1
        ok = _rollouts(load_policy(out), args.episodes, args.max_steps, 100_000)
        lo, hi = wilson_interval(sum(ok), len(ok))
        row = {
            "head": name,
            "success": round(sum(ok) / len(ok), 3),
            "ci95": [round(lo, 3), round(hi, 3)],
            "episodes": len(ok),
            "final_loss": round(r.final_loss, 4),
            "train_s": round(train_s, 1),
            "eval_s": round(time.perf_counter() - t1 - train_s, 1),
        }
        rows.append(row)
        print(
            f"{name:<24} | {row['success']:>7.2f}  [{lo:.2f}, {hi:.2f}] | {row['final_loss']:>8.4f} | "
            f"{row['train_s']:>6.0f} s {row['eval_s']:>6.0f} s",
            flush=True,
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[8, 32, 128, 512, 1024], help="history lengths")
    ap.add_argument(
        "--mixer-lengths", type=int, nargs="+", default=[128, 1024, 4096],
        help="history lengths of the mixer-only rows (the temporal blocks without per-frame pooling)",
    )  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per mixer and length (alternating)")
    ap.add_argument("--batch", type=int, default=8, help="batch size of the scaling part")
    ap.add_argument("--tokens", type=int, default=4, help="tokens per frame in the scaling part")
    ap.add_argument("--hidden", type=int, default=128, help="head width (both mixers)")
    ap.add_argument("--demos", type=int, default=40, help="expert demos of the memory task")
    ap.add_argument("--steps", type=int, default=400, help="training steps per head")
    ap.add_argument("--history", type=int, default=16, help="history of the hyena and attention heads (task part)")
    ap.add_argument("--episodes", type=int, default=20, help="evaluation episodes per head")
    ap.add_argument("--max-steps", type=int, default=60, help="step limit of an evaluation episode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-task", action="store_true", help="only the scaling part")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.tokens} tokens/frame")
    print(f"width {args.hidden}, 2 blocks; fwd+bwd step time (median) and MB saved for backward")
    print(" part history |  hyena ms   attn ms attn/hy |  hyena MB   attn MB attn/hy")
    rows = scaling(args.lengths, args.repeats, args.batch, args.tokens, args.hidden, "head")
    rows += scaling(args.mixer_lengths, args.repeats, args.batch, args.tokens, args.hidden, "mixer")
    task_rows: list[dict] = []
    if not args.skip_task:
        print(f"\nmemory task {TASK}: success over {args.episodes} episodes (95% Wilson CI), {args.steps} steps/head")
        print("head                     | success  CI           | loss     | train   eval")
        with tempfile.TemporaryDirectory() as tmp:
            task_rows = memory_task(args, Path(tmp))
    print(json.dumps({"benchmark": "hyena", "scaling": rows, "memory_task": task_rows}))


if __name__ == "__main__":
    main()
