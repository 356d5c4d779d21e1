"""Tiny inputs for tests/suite/test_study.py: an SSv2-layout clip folder (a square moving in one of four
directions: the caption template) and two toy scenarios of the refer and affordance families (fast cells)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.suite import (
    Adapter,
    Budget,
    CellResult,
    EncoderSpec,
    Scenario,
    TokenSource,
    fit,
    predict,
    register,
    write_dataset,
)

MOVES = {  # template -> (dy, dx) per frame
    "Pushing [something] from left to right": (0, 1),
    "Pushing [something] from right to left": (0, -1),
    "Moving [something] up": (-1, 0),
    "Moving [something] down": (1, 0),
}
THINGS = ["a cup", "a box", "a block"]


def write_clip(path: Path, template: str, rng: np.random.Generator, side: int = 32, frames: int = 8) -> None:
    import av

    dy, dx = MOVES[template]
    y, x = rng.integers(10, side - 18, 2)
    colour = rng.integers(120, 255, 3)
    with av.open(str(path), "w", format="webm") as c:
        s = c.add_stream("libvpx", rate=8)
        s.width, s.height, s.pix_fmt = side, side, "yuv420p"
        for t in range(frames):
            img = np.full((side, side, 3), 40, np.uint8)
            yy, xx = y + dy * t, x + dx * t
            img[yy : yy + 8, xx : xx + 8] = colour
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_corpus(root: Path, n_train: int = 24, n_val: int = 8, seed: int = 0) -> Path:
    """videos/<id>.webm + labels/{train,validation}.json in the SSv2 layout; templates cycle."""
    rng = np.random.default_rng(seed)
    (root / "videos").mkdir(parents=True)
    (root / "labels").mkdir()
    templates = list(MOVES)
    entries: dict[str, list] = {"train": [], "validation": []}
    for i in range(n_train + n_val):
        split = "train" if i < n_train else "validation"
        tpl, thing = templates[i % len(templates)], THINGS[i % len(THINGS)]
        write_clip(root / "videos" / f"{1000 + i}.webm", tpl, rng)
        label = tpl.replace("[something]", thing)
        entries[split].append({"id": str(1000 + i), "label": label, "template": tpl, "placeholders": [thing]})
    for split, rows in entries.items():
        (root / "labels" / f"{split}.json").write_text(json.dumps(rows))
    return root


class _Toy(Scenario):
    """Which quadrant holds the bright square (learnable from pixels), under a family's name."""

    version = 1
    description = "toy: which quadrant holds the bright square"
    metrics = {"accuracy": True}
    default_budget = Budget(steps=10, batch_size=16, lr=3e-3)

    def __init__(self, name: str, family: str) -> None:
        self.name, self.family = name, family

    def data_config(self, size: str) -> dict:
        return {"size": size, "n": 64, "side": 32, "name": self.name}

    def generate(self, out: Path, config: dict, workers: int = 1, progress: bool = False):
        rng = np.random.default_rng(0)
        n, side = config["n"], config["side"]
        images = rng.integers(0, 60, (n, side, side, 3), dtype=np.uint8)
        labels = rng.integers(0, 4, n)
        for i, q in enumerate(labels):
            y, x = (q // 2) * side // 2, (q % 2) * side // 2
            images[i, y + 4 : y + 12, x + 4 : x + 12] = 250
        splits = ["train"] * 40 + ["val"] * 4 + ["test_seen"] * 10 + ["test_heldout"] * 10
        records = [{"split": s} for s in splits]
        return write_dataset(out, self.name, self.version, config, {"images": images, "labels": labels}, records)

    def run_cell(self, dataset, encoder: EncoderSpec, ctx) -> CellResult:
        src = TokenSource(encoder, encoder.build("visual"), dataset.arrays["images"], None, ctx.cache_dir,
                          {"dataset": dataset.hash, "spec": encoder.spec})  # fmt: skip
        adapter = Adapter(src.embed_dim, src.n_heads, 1, nn.Linear(src.embed_dim, 4))
        y = torch.as_tensor(np.array(dataset.arrays["labels"]))
        fit(adapter, src, {"y": y}, lambda o, b: F.cross_entropy(o, b["y"]), dataset.split("train"), ctx.budget,
            ctx.seed)  # fmt: skip
        test = dataset.split("test_seen", "test_heldout")
        acc = float((predict(adapter, src, test).argmax(-1) == y[test]).float().mean())
        return CellResult({"accuracy": acc}, instances=len(test))


TOYS = [_Toy("study-toy-refer", "refer"), _Toy("study-toy-affordance", "affordance")]
for _t in TOYS:
    register(_t)
