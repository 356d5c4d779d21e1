"""Preference fine-tuning (DPO) vs behaviour cloning in the suite's control scenario (press-button, household
sim, two 64x64 cameras, V-Cond-tiny + MAP-MLP head, the scenario's demos and BC budget).

    OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl .venv/bin/python benchmarks/dpo.py [--size tiny] [--test-episodes 20]

1. the scripted expert records the scenario's demos (its train scenes, demos per scene, expert noise);
2. BC trains on them (the scenario's step budget): the reference;
3. `robolearn eval --save-episodes` rolls the BC policy out in the train scenes with collection seeds
   (disjoint from the test seeds) and records every rollout as an episode, failures with success=0;
4. DPO fine-tunes the BC policy on pairs mined from demos + recorded rollouts (same scene + instruction);
   a control, "BC+", is the same run with the DPO term off (`--dpo.dpo-weight 0 --dpo.bc-weight 1`: BC from
   the reference on the same preferred segments, same steps and learning rate), so a DPO gain is not just
   more steps on the preferred data;
5. every policy is evaluated on the same test episodes (seen and held-out scenes, test seeds), the policies'
   order alternating from seed to seed. Success with 95% Wilson intervals; ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from robolearn.eval.commands import EvalCommand, run_eval  # noqa: E402
from robolearn.eval.metrics import wilson_interval  # noqa: E402
from robolearn.policies import MapMlpHeadConfig, PolicyConfig  # noqa: E402
from robolearn.policies.preference.train import train_dpo  # noqa: E402
from robolearn.policies.train import TrainConfig, train  # noqa: E402
from robolearn.suite.families.control import Control  # noqa: E402


def log(msg: str) -> None:
    print(f"[dpo bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def evaluate(policy: Path, scenes: list[str], episodes: int, seed: int, out: Path, save: bool, num_envs: int) -> list:
    ec = EvalCommand(
        policy=str(policy),
        episodes=episodes,
        seeds=[seed],
        scenes=scenes,
        videos=0,
        out=out,
        save_episodes=save,
        num_envs=num_envs,
        progress=False,
    )
    return run_eval(ec)["episodes"]


def summary(eps: list[dict], heldout: set[tuple[int, int]]) -> dict:
    def rate(sel: list[dict]) -> dict:
        k, n = sum(bool(e["success"]) for e in sel), len(sel)
        lo, hi = wilson_interval(k, n)
        return {"successes": k, "episodes": n, "rate": k / n if n else float("nan"), "ci95": [lo, hi]}

    held = [e for e in eps if (e["household"], e["scene"]) in heldout]
    seen = [e for e in eps if (e["household"], e["scene"]) not in heldout]
    return {"all": rate(eps), "seen": rate(seen), "heldout": rate(held)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="tiny", choices=["tiny", "small", "full"], help="the control scenario's size")
    ap.add_argument("--collect-episodes", type=int, default=18, help="BC rollouts recorded in the train scenes")
    ap.add_argument("--test-episodes", type=int, default=20, help="test episodes per policy and test seed")
    ap.add_argument("--test-seeds", type=int, nargs="+", default=[0], help="test seeds (collection uses 100+)")
    ap.add_argument("--dpo-steps", type=int, default=100)
    ap.add_argument("--dpo-lr", type=float, default=1e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--bc-weight", type=float, default=0.5)
    ap.add_argument("--match", default="instruction", choices=["instruction", "task"])
    ap.add_argument("--no-control", action="store_true", help="skip the BC+ control row")
    ap.add_argument("--num-envs", type=int, default=1, help="parallel env processes in evaluation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--out", default="", help="work folder (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    from robolearn.collection.expert_demos import record_expert_demos
    from robolearn.encoders.offline import write_language_model

    work = Path(args.out or tempfile.mkdtemp(prefix="dpo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    scen = Control()
    cfg, budget = scen.data_config(args.size), scen.budget(args.size)
    lm = work / "lm"
    if not lm.exists():  # visual mode: the LM only sees the null instruction; a tiny offline one keeps it fast
        write_language_model(lm, vocab_size=1000, dim=32, layers=1, heads=2)
    demos = work / "demos"
    if not demos.exists():
        log(f"recording demos: {cfg['demos_per_scene']} x {len(cfg['train_scenes'])} scenes")
        record_expert_demos(
            demos,
            cfg["task"],
            [tuple(s) for s in cfg["train_scenes"]],
            cfg["demos_per_scene"],
            tuple(cfg["cameras"]),
            cfg["image_size"],
            cfg["expert_noise"],
            seed=cfg["seed"],
        )
    cache = str(work / "cache")
    cams = list(cfg["cameras"])
    pc = PolicyConfig(encoder="v-cond-tiny", language_model=str(lm), cameras=cams, head=MapMlpHeadConfig())
    common = dict(batch_size=budget.batch_size, weight_decay=budget.weight_decay, feature_cache=cache, progress=False)
    log(f"BC: {budget.steps} steps")
    t = time.perf_counter()
    bc = train(
        TrainConfig(
            data=[demos], val_fraction=0.0, out=work / "bc", policy=pc, steps=budget.steps, lr=budget.lr,
            seed=args.seed, log_every=max(1, budget.steps // 10), **common,
        )
    )  # fmt: skip
    bc_s = time.perf_counter() - t
    train_scenes = [f"{h}/{s}" for h, s in cfg["train_scenes"]]
    log(f"collecting {args.collect_episodes} BC rollouts in the train scenes (--save-episodes)")
    coll = evaluate(bc.policy_dir, train_scenes, args.collect_episodes, 100, work / "collect", True, args.num_envs)
    rollouts = work / "collect" / "rollouts"
    n_fail = sum(not e["success"] for e in coll)
    log(f"recorded {len(coll)} rollouts, {n_fail} failures")
    dcfg = TrainConfig(
        data=[demos, rollouts], out=work / "dpo", objective="dpo", reference=str(bc.policy_dir),
        steps=args.dpo_steps, lr=args.dpo_lr, seed=args.seed, log_every=max(1, args.dpo_steps // 10), **common,
    )  # fmt: skip
    d = dcfg.dpo
    d.beta, d.sigma, d.bc_weight, d.match = args.beta, args.sigma, args.bc_weight, args.match
    log(f"DPO: {args.dpo_steps} steps")
    t = time.perf_counter()
    dpo = train_dpo(dcfg)
    dpo_s = time.perf_counter() - t
    pairs = json.loads((dpo.policy_dir / "config.json").read_text())["meta"]["pairs"]
    policies = {"BC": bc.policy_dir, "BC+DPO": dpo.policy_dir}
    if not args.no_control:  # the ablation: the same run with the DPO term off (BC on the preferred steps only)
        log(f"BC+ control: {args.dpo_steps} steps of BC on the preferred segments (dpo-weight 0)")
        ablation = replace(dcfg.dpo, dpo_weight=0.0, bc_weight=1.0)
        policies["BC+"] = train_dpo(replace(dcfg, out=work / "bc_plus", dpo=ablation)).policy_dir
    seen = [tuple(s) for s in cfg["eval_seen"]]
    held = [tuple(s) for s in cfg["eval_heldout"]]
    order = [s for pair in zip(seen, held) for s in pair] + seen[len(held) :] + held[len(seen) :]
    test_scenes = [f"{h}/{s}" for h, s in order]
    results: dict[str, list] = {k: [] for k in policies}
    for j, seed in enumerate(args.test_seeds):
        names = list(policies) if j % 2 == 0 else list(policies)[::-1]
        for name in names:
            log(f"test: {name}, seed {seed}, {args.test_episodes} episodes")
            out = work / "test" / f"{name.replace('+', '_')}_seed{seed}"
            results[name] += evaluate(policies[name], test_scenes, args.test_episodes, seed, out, False, args.num_envs)
    heldout = set(held)
    rows = {name: summary(eps, heldout) for name, eps in results.items()}
    print(
        f"control scenario ({args.size}): {cfg['task']}, {sum(1 for _ in demos.rglob('*.h5'))} demos, "
        f"{len(coll)} recorded BC rollouts ({n_fail} failures), {pairs['outcome_pairs']} outcome pairs "
        f"(match {args.match}); BC {budget.steps} steps, DPO {args.dpo_steps} steps "
        f"(beta {args.beta}, sigma {args.sigma}, bc-weight {args.bc_weight}); test seeds {args.test_seeds}"
    )
    print(f"{'policy':10s} {'success':>8s} {'95% CI':>14s} {'seen':>6s} {'held-out':>9s} {'episodes':>9s}")
    for name, r in rows.items():
        a = r["all"]
        print(
            f"{name:10s} {a['rate']:8.2f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}] {r['seen']['rate']:6.2f} "
            f"{r['heldout']['rate']:9.2f} {a['episodes']:9d}"
        )
    hist = dpo.history[-1] if dpo.history else {}
    out = {
        "benchmark": "dpo",
        "size": args.size,
        "task": cfg["task"],
        "bc": rows["BC"],
        "dpo": rows["BC+DPO"],
        "bc_plus": rows.get("BC+"),
        "success_diff": rows["BC+DPO"]["all"]["rate"] - rows["BC"]["all"]["rate"],
        "success_ratio": (rows["BC+DPO"]["all"]["rate"] / rows["BC"]["all"]["rate"])
        if rows["BC"]["all"]["rate"]
        else None,
        "collected": len(coll),
        "collected_failures": n_fail,
        "pairs": pairs,
        "dpo_final": {k: hist.get(k) for k in ("dpo_loss", "reward_accuracy", "margin", "bc_loss")},
        "bc_train_s": round(bc_s, 1),
        "dpo_train_s": round(dpo_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
