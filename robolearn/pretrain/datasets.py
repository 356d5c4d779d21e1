"""Torch datasets of data-locked pretraining examples, one class per batch format.

Every item is a dict of tensors (the DataLoader's default collate stacks them), keyed as the encoders'
`compute_loss(batch)` reads them:

    format            class                images        language
    state             StateDataset         (3, H, W)     -
    state+language    StateLanguageDataset (3, H, W)     lang_ids, lang_mask (L,) int64
    state+ok          StateOKDataset       (2, 3, H, W)  lang_ids, lang_mask
    state+ok (V-Gen)  GenStateOKDataset    (2, 3, H, W)  lang_ids, lang_mask (conditioning),
                                                         gen_ids, gen_mask (L,) int64 (generation target),
                                                         gen_weight () float32: 1 generate, 0 condition
    quintet+language  QuintetDataset       (5, 3, H, W)  lang_ids, lang_mask

Images are float32, resized to `image_size` (bilinear, antialiased, from the uint8 frame) and
ImageNet-normalised; `normalization="0-255"` gives R3M's 0..255 floats, "unit" 0..1. Frames that are not
square are centre-cropped first. "No language" (dropout, V-Gen generate examples) is [CLS] then padding.

`set_epoch(e)` switches to epoch e's locked samples (and language-dropout / generation draws). The epoch lives
in a shared-memory tensor, so DataLoader workers see it even when they are persistent. len() is the same for
every epoch and the example order is a pure function of (seed, epoch): shuffle with a (Distributed)Sampler.
Validation datasets (split="val") always use the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from robolearn.pretrain.sampling import VAL_EPOCH, ClipSource, EpochPlan, check_format, plan_epoch, split_code

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Normalization = Literal["imagenet", "0-255", "unit"]

# model identifier -> (dataset class name, normalization)
MODEL_DATASETS: dict[str, tuple[str, Normalization]] = {
    "v-cond": ("StateLanguageDataset", "imagenet"),
    "v-cond-base": ("StateLanguageDataset", "imagenet"),
    "v-dual": ("StateOKDataset", "imagenet"),
    "v-dual-base": ("StateOKDataset", "imagenet"),
    "v-gen": ("GenStateOKDataset", "imagenet"),
    "v-gen-base": ("GenStateOKDataset", "imagenet"),
    "r-mvp": ("StateDataset", "imagenet"),
    "r-r3m-vit": ("QuintetDataset", "0-255"),
    "r-r3m-rn50": ("QuintetDataset", "0-255"),
}


def _as_sources(sources: Any) -> tuple[list[ClipSource], list[float] | None]:
    """One source, a list of sources, or a list of (source, weight) pairs."""
    if hasattr(sources, "table"):
        return [sources], None
    items = list(sources)
    if not items:
        raise ValueError("a pretraining dataset needs at least one clip source")
    if all(isinstance(x, tuple) and len(x) == 2 for x in items):
        return [s for s, _ in items], [float(w) for _, w in items]
    for x in items:
        if not hasattr(x, "table"):
            raise TypeError(
                f"expected clip sources (with .table and .read_frames) or (source, weight) pairs, got {x!r:.80}"
            )
    return items, None


class ClipDataset(torch.utils.data.Dataset):
    """Examples of one batch format drawn from one or more clip sources (weighted mixture)."""

    format: ClassVar[str] = "state"
    language: ClassVar[bool] = False

    def __init__(
        self,
        sources: Any,
        split: str = "train",
        image_size: int = 224,
        normalization: Normalization = "imagenet",
        seed: int = 21,
        epoch: int = 0,
        epoch_size: int | None = None,
        lang_dropout: float = 0.0,
        gen_ratio: float = 0.0,
        features: Any = None,
    ):
        check_format(self.format)
        split_code(split)
        if normalization not in ("imagenet", "0-255", "unit"):
            raise ValueError(f"normalization must be 'imagenet', '0-255' or 'unit', got {normalization!r}")
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.sources, self.weights = _as_sources(sources)
        tables = [s.table for s in self.sources]
        lens = {t.max_lang_len for t in tables}
        cls_ids = {t.cls_token_id for t in tables}
        if len(lens) > 1 or len(cls_ids) > 1:
            raise ValueError(
                f"sources disagree on the language format: max_lang_len {sorted(lens)}, [CLS] id "
                f"{sorted(cls_ids)}; tokenise every source with the same tokenizer and length"
            )
        self.split, self.image_size, self.normalization = split, image_size, normalization
        self.seed, self.epoch_size = seed, epoch_size
        self.lang_dropout, self.gen_ratio = lang_dropout, gen_ratio
        self.features = features  # lm_features.FeatureStore: items then carry precomputed `lang_features`
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._plan: EpochPlan | None = None
        self.set_epoch(epoch)
        n = len(self.plan)
        if n == 0:
            raise ValueError(f"no {split} clips in the given sources ({', '.join(t.name for t in tables)})")
        self._len = n
        self._null = tables[0].null_language()
        mean = IMAGENET_MEAN if normalization == "imagenet" else (0.0, 0.0, 0.0)
        std = IMAGENET_STD if normalization == "imagenet" else (1.0, 1.0, 1.0)
        self._mean = torch.tensor(mean).view(3, 1, 1)
        self._std = torch.tensor(std).view(3, 1, 1)

    # ---- epochs -------------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch `epoch`'s locked samples (validation ignores this). Visible to running workers."""
        self._epoch.fill_(int(epoch))

    @property
    def plan(self) -> EpochPlan:
        e = VAL_EPOCH if self.split == "val" else self.epoch
        if self._plan is None or self._plan.epoch != e:
            self._plan = plan_epoch(
                [s.table for s in self.sources],
                self.format,
                self.split,
                self.seed,
                e,
                self.weights,
                self.epoch_size,
                self.lang_dropout,
                self.gen_ratio,
            )
        return self._plan

    def __len__(self) -> int:
        return self._len

    # ---- items ---------------------------------------------------------------------------------------------
    def images(self, source: int, clip: int, frames: Sequence[int]) -> torch.Tensor:
        """(k, 3, H, W) float32 frames of a clip, resized and normalised."""
        out = []
        for img in self.sources[source].read_frames(clip, frames):
            h, w = img.shape[:2]
            if h != w:
                s = min(h, w)
                img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
            out.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))
        x = torch.stack(out)
        if x.shape[-1] != self.image_size:
            x = TF.resize(x, [self.image_size, self.image_size], antialias=True)
        x = x.float()
        if self.normalization == "0-255":
            return x
        x = x / 255.0
        return (x - self._mean) / self._std if self.normalization == "imagenet" else x

    def caption(self, source: int, clip: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.sources[source].table
        return torch.from_numpy(t.input_ids[clip].copy()), torch.from_numpy(t.attention_mask[clip].copy())

    def null_language(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self._null[0].copy()), torch.from_numpy(self._null[1].copy())

    def _example(self, i: int) -> tuple[EpochPlan, int, int, np.ndarray]:
        plan = self.plan
        if not -len(plan) <= i < len(plan):
            raise IndexError(f"index {i} out of range for {len(plan)} examples")
        return plan, int(plan.source[i]), int(plan.clip[i]), plan.frames[i]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        plan, s, c, frames = self._example(i)
        imgs = self.images(s, c, frames)
        item = {"images": imgs[0] if imgs.shape[0] == 1 else imgs}
        if self.language:
            ids, mask = self.null_language() if plan.drop_language[i] else self.caption(s, c)
            item["lang_ids"], item["lang_mask"] = ids, mask
            self._add_features(item)
        return item

    def _add_features(self, item: dict[str, torch.Tensor]) -> None:
        if self.features is not None:
            item["lang_features"] = self.features.get(item["lang_ids"], item["lang_mask"])

    def describe(self, i: int) -> dict[str, Any]:
        """Which clip and frames example i uses (for debugging and tests)."""
        plan, s, c, frames = self._example(i)
        t = self.sources[s].table
        return {
            "source": t.name,
            "clip": t.ids[c],
            "frames": frames.tolist(),
            "caption": t.captions[c],
            "drop_language": bool(plan.drop_language[i]),
            "generate": bool(plan.generate[i]),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_plan"] = None  # rebuilt in the worker (cheap) instead of pickled
        return state


class StateDataset(ClipDataset):
    """R-MVP: single frames, no language (5 per clip per epoch)."""

    format = "state"


class StateLanguageDataset(ClipDataset):
    """V-Cond: single frames with the caption (5 per clip per epoch)."""

    format = "state+language"
    language = True


class StateOKDataset(ClipDataset):
    """V-Dual: (initial, k) frame pairs with the caption (4 per clip per epoch)."""

    format = "state+ok"
    language = True


class GenStateOKDataset(StateOKDataset):
    """V-Gen: (initial, k) pairs; a `gen_ratio` share of each epoch's examples is 'generate' (condition on the
    null language, predict the caption, gen_weight 1), the rest 'condition' (caption in, null target, 0)."""

    def __init__(self, sources: Any, split: str = "train", gen_ratio: float = 0.5, **kw: Any):
        super().__init__(sources, split, gen_ratio=gen_ratio, **kw)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        plan, s, c, frames = self._example(i)
        item = {"images": self.images(s, c, frames)}
        caption, null = self.caption(s, c), self.null_language()
        gen = bool(plan.generate[i])
        cond = null if gen or plan.drop_language[i] else caption
        target = caption if gen else null
        item["lang_ids"], item["lang_mask"] = cond
        item["gen_ids"], item["gen_mask"] = target
        item["gen_weight"] = torch.tensor(1.0 if gen else 0.0)
        self._add_features(item)
        return item


class QuintetDataset(ClipDataset):
    """R3M: all five frames with the caption (1 per clip per epoch)."""

    format = "quintet+language"
    language = True


DATASETS: dict[str, type[ClipDataset]] = {
    c.__name__: c for c in (StateDataset, StateLanguageDataset, StateOKDataset, GenStateOKDataset, QuintetDataset)
}


def dataset_for(model: str, sources: Any, split: str = "train", **kw: Any) -> ClipDataset:
    """The dataset a model identifier trains on (e.g. "v-cond" -> StateLanguageDataset, ImageNet-normalised;
    "r-r3m-vit" -> QuintetDataset with 0-255 pixels). Keyword arguments go to the dataset."""
    try:
        cls_name, norm = MODEL_DATASETS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODEL_DATASETS)}") from None
    kw.setdefault("normalization", norm)
    return DATASETS[cls_name](sources, split, **kw)
