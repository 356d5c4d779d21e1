"""One pretraining step, robolearn.encoders vs the reference Voltron (voltron-robotics 1.1.0), alternating.

    .venv/bin/python benchmarks/pretrain_step.py [--models v-cond,v-gen,r-mvp] [--reps 5] [--warmup 2]
                                                 [--batch 8] [--threads 2] [--device cpu|cuda]

One step = forward + backward + AdamW step + zero_grad, ViT-S models at 224x224 (the released shapes), batch 8
(V-Gen: 8 frame pairs), torch at --threads threads, OMP_WAIT_POLICY=PASSIVE. Each side runs in its own
long-lived process: ours from this venv (this file with --worker), the reference from .venv-ref
(benchmarks/_voltron_ref.py worker). The driver sends the same requests to both and ALTERNATES them (which
side goes first flips every round); each side times its own step inside its process (IPC excluded).
After --warmup untimed steps per side, --reps rounds; medians are reported.

Language, made realistic. Both sides use the same full-size random DistilBERT (768-d, 6 layers, 30522
tokens: robolearn.encoders.offline.write_language_model with its defaults, loaded by both from one folder).
A pool of 64 distinct captions is tokenised once per process; every step draws 8 DIFFERENT captions from it
(the same draw for both sides; V-Gen also draws its generate/condition flags with p = 0.5). The reference
runs the frozen LM on the batch's captions at every step, as it does in training. Ours caches LM features per
caption: before timing, its worker runs the LM once over the 64 captions (and V-Gen's [CLS]-only null
caption), as `robolearn pretrain` does before training (its feature store: once per distinct caption). With
--lang-path features (default, robolearn pretrain's path) every step passes the 8 captions' stored features
as `lang_features`; with --lang-path cache it passes only the ids, found in the encoder's warm LRU caption
cache (as in a long run without a feature store). Either way the LM does not run in a timed step. A third
process, "ours (LM every step)", gets ids only with the cache disabled (lm_cache_size=0): it runs the LM every
step like the reference and shows the implementation alone (V-Cond and V-Gen; --no-uncached skips it).
A fourth process, "ours (compiled)", is "ours" with torch.compile, as `robolearn pretrain --train.compile`
runs it (--no-compile skips it); it compiles with an empty inductor cache in its first warm-up step, reported
as "first step".

FLOPs: one extra step per side under torch.utils.flop_counter.FlopCounterMode (attention on its math backend
so it is counted). Roof: an fp32 2048x2048 matmul loop (--roof-iters products) measured in the SAME
processes right before each timed step; achieved GFLOP/s = the side's own counted FLOPs / its median step
time; "% of roof" = median over rounds of (achieved in that round / the roof measured just before it).
Peak RSS: ru_maxrss of each worker process at the end.

--device cuda (untested here: no GPU): bf16 autocast on both sides, reports examples/s and MFU against the
GPU's dense bf16 peak (known names, or --peak-tflops).

Prints a table and ends with ONE JSON line of figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _voltron_ref as shared  # noqa: E402  (plain-torch helpers shared with the reference worker)

MODELS = ["v-cond", "v-dual", "v-gen", "r-mvp"]
LANGUAGE_MODELS = {"v-cond", "v-dual", "v-gen"}
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10": 125.0}
GOAL_RATIO, GOAL_ROOF = 0.8, 0.70


def caption_pool(n: int = 64) -> list[str]:
    """n distinct Something-Something-style captions (3 to 14 words)."""
    verbs = [
        "pushing",
        "pulling",
        "putting",
        "taking",
        "moving",
        "lifting",
        "dropping",
        "turning",
        "opening",
        "closing",
        "picking up",
        "stacking",
    ]
    objects = ["a cup", "the red block", "a bottle", "the drawer", "a box", "the bowl", "something", "a can"]
    tails = [
        "",
        "from left to right",
        "onto the table next to the bowl",
        "into the bin slowly",
        "a little bit so that it almost falls off the edge of the counter",
        "towards the camera",
    ]
    rng = random.Random(0)
    out: list[str] = []
    while len(out) < n:
        c = " ".join(w for w in (rng.choice(verbs), rng.choice(objects), rng.choice(tails)) if w)
        if c not in out:
            out.append(c)
    return out


# --- the robolearn worker (runs in this venv) -----------------------------------------------------------------
def our_worker(args: argparse.Namespace) -> None:
    out = shared.worker_setup(args.threads)
    import torch

    from robolearn.encoders import build
    from robolearn.encoders.language import null_language
    from robolearn.pretrain.schedule import make_optimizer
    from robolearn.pretrain.trainer import compile_for_training

    device = args.device
    torch.manual_seed(0)
    overrides: dict[str, Any] = {}
    if args.model in LANGUAGE_MODELS:
        overrides = {"language_model": args.lm, "lm_cache_size": 0 if args.uncached else 4096}
    model = build(args.model, **overrides).to(device).train()
    optimizer = make_optimizer(model, "adamw", lr=1.5e-4 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.95))
    captions = json.loads(Path(args.pool).read_text())
    if model.uses_language:
        pool_ids, pool_mask = (t.to(device) for t in model.language.tokenize(captions))
        pool_feats = model.language.encode(pool_ids, pool_mask)  # the LM, once per caption
        model.language.encode(*null_language(1, pool_ids.shape[1], 101, device))  # V-Gen's null caption
        model.language.embed_tokens(pool_ids[:1])
    use_features = model.uses_language and not args.uncached and args.lang_path == "features"
    frames = model.n_frames
    shape = (args.batch, frames, 3, 224, 224) if frames > 1 else (args.batch, 3, 224, 224)
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(1)).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

    forward = compile_for_training(model) if args.compile else model  # as robolearn pretrain compiles

    def step(req: dict, fn: Any = forward) -> None:
        batch: dict[str, Any] = {"images": images}
        if model.uses_language:
            idx = torch.tensor(req["captions"], device=device)
            batch.update(lang_ids=pool_ids[idx], lang_mask=pool_mask[idx])
            if use_features:  # what robolearn pretrain's datasets hand over (feature store)
                batch["lang_features"] = pool_feats[idx]
        if args.model == "v-gen":
            batch["generate"] = torch.tensor(req["generate"], device=device)
        with autocast:
            loss, _ = fn(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    shared.serve(step, device, out, flop_step=(lambda req: step(req, model)) if args.compile else None)
    if model.uses_language:
        print(f"[ours] LM cache stats {model.language.stats}", file=sys.stderr)


# --- the driver -------------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, cwd=str(ROOT)
        )

    def recv(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name!r} exited (code {self.proc.wait()}); see its stderr above")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"worker {self.name!r}: {reply['error']}")
        return reply

    def ask(self, **req: Any) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self.recv()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask(op="quit")
            except (RuntimeError, BrokenPipeError):
                pass
            self.proc.wait(timeout=60)


def bench_model(
    model: str, args: argparse.Namespace, lm: Path, pool: Path, ref_python: Path, env: dict[str, str]
) -> dict[str, Any]:
    common = [
        "--model",
        model,
        "--pool",
        str(pool),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
    ]
    ours_only = ["--lang-path", args.lang_path]
    lm_args = ["--lm", str(lm)]
    sides = {
        "ours": [sys.executable, str(Path(__file__).resolve()), "--worker", *common, *lm_args, *ours_only],
        "reference": [
            str(ref_python),
            str(HERE / "_voltron_ref.py"),
            "worker",
            *common,
            *lm_args,
            "--hf-cache",
            str(lm.parent / "hf-cache"),
        ],
    }
    if not args.no_compile:
        sides["ours (compiled)"] = sides["ours"] + ["--compile"]
    if model in LANGUAGE_MODELS and not args.no_uncached:
        sides["ours (LM every step)"] = sides["ours"] + ["--uncached"]
    workers: dict[str, Worker] = {}
    try:
        for name, cmd in sides.items():  # start one at a time: construction is not measured anyway
            # The compiled side compiles from scratch (a fresh inductor cache): its first step is the cold cost.
            side_env = (
                dict(env, TORCHINDUCTOR_CACHE_DIR=str(pool.parent / f"inductor-{model}")) if "--compile" in cmd else env
            )
            workers[name] = Worker(name, cmd, side_env)
            workers[name].recv()
        rng = random.Random(1234)
        n_pool = len(json.loads(pool.read_text()))

        def draw() -> dict:
            return {
                "captions": rng.sample(range(n_pool), args.batch),
                "generate": [rng.random() < 0.5 for _ in range(args.batch)],
            }

        names = list(workers)
        first: dict[str, float] = {}
        for _ in range(args.warmup):
            batch = draw()
            for name in names:
                t = workers[name].ask(op="step", batch=batch)["t"]
                first.setdefault(name, t)  # includes the compile for "ours (compiled)"
        batch = draw()
        flops = {name: workers[name].ask(op="flops", batch=batch)["flops"] for name in names}
        times: dict[str, list[float]] = {n: [] for n in names}
        roofs: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.reps):
            batch = draw()
            order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
            dtype = "bfloat16" if args.device == "cuda" else "float32"
            for name in order:
                roofs[name].append(
                    workers[name].ask(op="roof", n=args.roof_n, iters=args.roof_iters, dtype=dtype)["gflops"]
                )
                times[name].append(workers[name].ask(op="step", batch=batch)["t"])
            print(
                f"  {model} round {r + 1}/{args.reps}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names),
                file=sys.stderr,
                flush=True,
            )
        rss = {name: workers[name].ask(op="rss")["peak_rss_mib"] for name in names}
    finally:
        for w in workers.values():
            w.close()
    result: dict[str, Any] = {}
    for name in names:
        med = statistics.median(times[name])
        achieved = [flops[name] / t / 1e9 for t in times[name]]
        result[name] = {
            "step_s": med,
            "step_min_s": min(times[name]),
            "step_max_s": max(times[name]),
            "examples_per_s": args.batch / med,
            "gflop_per_step": flops[name] / 1e9,
            "achieved_gflops": flops[name] / med / 1e9,
            "roof_gflops": statistics.median(roofs[name]),
            "roof_fraction": statistics.median(a / roof for a, roof in zip(achieved, roofs[name])),
            "peak_rss_mib": rss[name],
            "times_s": [round(t, 3) for t in times[name]],
            "first_step_s": first.get(name),
        }
    ours, ref = result["ours"], result["reference"]
    result["ratio_step_ours_over_ref"] = ours["step_s"] / ref["step_s"]
    result["ratio_per_round_median"] = statistics.median(o / f for o, f in zip(times["ours"], times["reference"]))
    if "ours (compiled)" in result:
        result["ratio_compiled_over_ref"] = result["ours (compiled)"]["step_s"] / ref["step_s"]
        result["ratio_compiled_per_round_median"] = statistics.median(
            o / f for o, f in zip(times["ours (compiled)"], times["reference"])
        )
    if "ours (LM every step)" in result:
        result["ratio_uncached_over_ref"] = result["ours (LM every step)"]["step_s"] / ref["step_s"]
        result["lm_flop_share_ref"] = 1 - ours["gflop_per_step"] / ref["gflop_per_step"]
    if args.device == "cuda":
        import torch

        gpu = torch.cuda.get_device_name(0)
        peak = args.peak_tflops or next((v for k, v in BF16_PEAK_TFLOPS.items() if k in gpu), None)
        for name in names:
            result[name]["mfu_bf16"] = None if peak is None else result[name]["achieved_gflops"] / (peak * 1e3)
        result["gpu"], result["bf16_peak_tflops"] = gpu, peak
    return result


def ref_python_path(arg: str | None) -> Path:
    path = Path(arg) if arg else ROOT / ".venv-ref" / "bin" / "python"
    if not path.exists():
        print(f"reference venv not found ({path}): run `make ref-venv` first", file=sys.stderr)
        sys.exit(2)
    return path


def load_line() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average n/a"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="v-cond,v-gen,r-mvp", help=f"some of {MODELS}")
    p.add_argument("--reps", type=int, default=5, help="timed rounds (>= 5 for the reported medians)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--roof-n", type=int, default=None, help="matmul size (default 2048 on CPU, 8192 on CUDA)")
    p.add_argument("--roof-iters", type=int, default=None, help="products per roof (default 8 on CPU, 50 on CUDA)")
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU dense bf16 peak for MFU (cuda only)")
    p.add_argument("--no-uncached", action="store_true", help="skip the 'ours (LM every step)' process")
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="skip the 'ours (compiled)' process "
        "(robolearn pretrain --train.compile: torch.compile, one-time compile in the warm-up)",
    )
    p.add_argument(
        "--lang-path",
        choices=["features", "cache"],
        default="features",
        help="how ours gets caption features: 'features' = precomputed per caption and passed as "
        "lang_features (robolearn pretrain's default), 'cache' = ids only, found in the encoder's "
        "warm LRU caption cache",
    )
    p.add_argument("--ref-python", default=None)
    p.add_argument("--workdir", default=None)
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--lm", help=argparse.SUPPRESS)
    p.add_argument("--pool", help=argparse.SUPPRESS)
    p.add_argument("--uncached", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        our_worker(args)
        return 0
    cuda = args.device == "cuda"
    args.roof_n = args.roof_n or (8192 if cuda else 2048)
    args.roof_iters = args.roof_iters or (50 if cuda else 8)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad:
        p.error(f"unknown model(s) {bad}; expected some of {MODELS}")
    ref_python = ref_python_path(args.ref_python)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda: CUDA is not available")
    t0 = time.perf_counter()
    load_before = load_line()

    tmp = tempfile.TemporaryDirectory(prefix="pretrain-step-") if args.workdir is None else None
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    from robolearn.encoders.offline import write_language_model

    hf_logging.disable_progress_bar()
    lm = write_language_model(work / "lm")  # distilbert-base-uncased shape, random weights
    pool = work / "captions.json"
    pool.write_text(json.dumps(caption_pool()))
    env = dict(
        os.environ,
        OMP_WAIT_POLICY="PASSIVE",
        OMP_NUM_THREADS=str(args.threads),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.pop("PYTHONPATH", None)

    results: dict[str, Any] = {}
    for model in models:
        print(f"{model}: starting workers", file=sys.stderr, flush=True)
        results[model] = bench_model(model, args, lm, pool, ref_python, env)

    unit = "examples/s" if args.device == "cpu" else "examples/s (bf16)"
    print(
        f"\nOne training step (fwd + bwd + AdamW), ViT-S 224x224, batch {args.batch}, {args.threads} threads, "
        f"OMP_WAIT_POLICY=PASSIVE, device {args.device}; medians of {args.reps} alternating rounds after "
        f"{args.warmup} warm-up steps; ours gets caption features via --lang-path {args.lang_path}. "
        f"{load_before} at start, {load_line()} at end.\n"
    )
    head = (
        f"{'model':7s} {'side':22s} {'step s':>7s} {'min':>6s} {'max':>6s} {unit:>10s} {'GFLOP/step':>10s} "
        f"{'GFLOP/s':>8s} {'roof':>7s} {'%roof':>6s} {'peak RSS MiB':>12s}"
    )
    if args.device == "cuda":
        head += f" {'MFU':>6s}"
    print(head)
    for model, res in results.items():
        for side in ("ours", "ours (compiled)", "ours (LM every step)", "reference"):
            if side not in res:
                continue
            r = res[side]
            line = (
                f"{model:7s} {side:22s} {r['step_s']:7.3f} {r['step_min_s']:6.2f} {r['step_max_s']:6.2f} "
                f"{r['examples_per_s']:10.2f} {r['gflop_per_step']:10.1f} {r['achieved_gflops']:8.1f} "
                f"{r['roof_gflops']:7.1f} {100 * r['roof_fraction']:5.1f}% {r['peak_rss_mib']:12.0f}"
            )
            if args.device == "cuda":
                mfu = r.get("mfu_bf16")
                line += f" {'n/a' if mfu is None else f'{100 * mfu:5.1f}%':>6s}"
            print(line)
        extra = ""
        if "ratio_uncached_over_ref" in res:
            extra = (
                f"; ours with the LM every step / reference {res['ratio_uncached_over_ref']:.3f}; the LM is "
                f"{100 * res['lm_flop_share_ref']:.1f}% of the reference's step FLOPs"
            )
        print(
            f"{'':7s} ours / reference step time {res['ratio_step_ours_over_ref']:.3f} (median of per-round "
            f"ratios {res['ratio_per_round_median']:.3f}){extra}"
        )
        if "ratio_compiled_over_ref" in res:
            print(
                f"{'':7s} ours compiled / reference {res['ratio_compiled_over_ref']:.3f} (per-round "
                f"{res['ratio_compiled_per_round_median']:.3f}); first step incl. compile "
                f"{res['ours (compiled)']['first_step_s']:.1f} s"
            )
    print(f"\nGoals: ours <= {GOAL_RATIO}x the reference's step time, >= {100 * GOAL_ROOF:.0f}% of the matmul roof.")
    goals: dict[str, dict] = {}
    for model, res in results.items():
        ref = res["reference"]
        for side in ("ours", "ours (compiled)"):
            if side not in res:
                continue
            ratio, roof = res[side]["step_s"] / ref["step_s"], res[side]["roof_fraction"]
            g = {
                "ratio": ratio,
                "ratio_goal_met": ratio <= GOAL_RATIO,
                "roof_fraction": roof,
                "roof_goal_met": roof >= GOAL_ROOF,
            }
            goals.setdefault(model, {})[side] = g
            print(
                f"  {model} {side:16s}: step ratio {ratio:.3f} ({'met' if g['ratio_goal_met'] else 'NOT met'}), "
                f"{100 * roof:.1f}% of roof ({'met' if g['roof_goal_met'] else 'NOT met'})"
            )
    elapsed = time.perf_counter() - t0
    print(f"  ({elapsed:.0f} s)\n")
    summary = {
        "benchmark": "pretrain_step",
        "device": args.device,
        "batch": args.batch,
        "threads": args.threads,
        "reps": args.reps,
        "warmup": args.warmup,
        "lang_path": args.lang_path,
        "load_start": load_before,
        "load_end": load_line(),
        "results": results,
        "goals": goals,
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(summary))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
