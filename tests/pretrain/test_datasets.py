"""Torch datasets per batch format on prepared shards (and mixed with our episodes)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from robolearn.pretrain.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    GenStateOKDataset,
    QuintetDataset,
    StateDataset,
    StateLanguageDataset,
    StateOKDataset,
    dataset_for,
)
from robolearn.pretrain.episodes_source import EpisodeSource
from robolearn.pretrain.shards import ShardSource

SIZE = 24  # model image size in these tests (frames are stored at 32)

EXPECT = {  # model -> (images shape, language keys)
    "r-mvp": ((3, SIZE, SIZE), set()),
    "v-cond": ((3, SIZE, SIZE), {"lang_ids", "lang_mask"}),
    "v-dual": ((2, 3, SIZE, SIZE), {"lang_ids", "lang_mask"}),
    "v-gen": ((2, 3, SIZE, SIZE), {"lang_ids", "lang_mask", "gen_ids", "gen_mask", "gen_weight"}),
    "r-r3m-vit": ((5, 3, SIZE, SIZE), {"lang_ids", "lang_mask"}),
}
PER_CLIP = {"r-mvp": 5, "v-cond": 5, "v-dual": 4, "v-gen": 4, "r-r3m-vit": 1}


@pytest.fixture(scope="module")
def shards(prepared) -> ShardSource:
    return ShardSource(prepared)


@pytest.mark.parametrize("model", list(EXPECT))
def test_items_have_the_model_input_shapes(shards, model):
    ds = dataset_for(model, shards, image_size=SIZE)
    assert len(ds) == 6 * PER_CLIP[model]  # 6 training clips
    item = ds[0]
    shape, lang = EXPECT[model]
    assert set(item) == {"images"} | lang
    assert item["images"].shape == shape and item["images"].dtype == torch.float32
    for k in lang - {"gen_weight"}:
        assert item[k].shape == (20,) and item[k].dtype == torch.int64
    if "gen_weight" in lang:
        assert item["gen_weight"].shape == () and item["gen_weight"].dtype == torch.float32
    val = dataset_for(model, shards, "val", image_size=SIZE)
    assert len(val) == 2 * PER_CLIP[model]


def test_pixels_are_resized_and_normalised(shards):
    ds = StateDataset(shards, image_size=32)  # stored size: no resize, exact check
    d = ds.describe(3)
    c = shards.table.ids.index(d["clip"])
    raw = torch.from_numpy(shards.read_frames(c, d["frames"])[0]).permute(2, 0, 1).float() / 255
    want = (raw - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(ds[3]["images"], want, atol=1e-6)
    r3m = QuintetDataset(shards, image_size=SIZE, normalization="0-255")
    x = r3m[0]["images"]
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 1.5  # 0..255 floats, as R3M expects
    assert dataset_for("r-r3m-rn50", shards, image_size=SIZE).normalization == "0-255"


def test_language_is_the_clip_caption(shards):
    ds = StateLanguageDataset(shards, image_size=SIZE)
    for i in (0, 7, 29):
        d = ds.describe(i)
        c = shards.table.ids.index(d["clip"])
        assert torch.equal(ds[i]["lang_ids"], torch.from_numpy(shards.table.input_ids[c]))
        assert d["caption"] == shards.table.captions[c]


def test_language_dropout_gives_cls_only(shards):
    ds = StateLanguageDataset(shards, image_size=SIZE, lang_dropout=0.5)
    dropped = [i for i in range(len(ds)) if ds.describe(i)["drop_language"]]
    assert len(dropped) == 15
    item = ds[dropped[0]]
    assert item["lang_ids"][0] == 101 and (item["lang_ids"][1:] == 0).all()
    assert item["lang_mask"].tolist() == [1] + [0] * 19


def test_vgen_generate_and_condition_examples(shards):
    ds = GenStateOKDataset(shards, image_size=SIZE)  # gen_ratio 0.5
    items = [ds[i] for i in range(len(ds))]
    w = torch.stack([it["gen_weight"] for it in items])
    assert w.sum() == 12 and set(w.tolist()) == {0.0, 1.0}
    for it in items:
        gen = it["gen_weight"] == 1
        cond, target = it["lang_mask"].sum(), it["gen_mask"].sum()
        assert (cond == 1) if gen else (target == 1)  # the null side is [CLS] only
        assert (target > 2) if gen else (cond > 2)  # the other side holds the caption


def test_set_epoch_redraws_train_but_not_val(shards):
    ds = StateOKDataset(shards, image_size=SIZE)
    e0 = [ds.describe(i)["frames"] for i in range(len(ds))]
    ds.set_epoch(1)
    e1 = [ds.describe(i)["frames"] for i in range(len(ds))]
    assert e0 != e1 and len(e0) == len(e1)
    ds.set_epoch(0)
    assert [ds.describe(i)["frames"] for i in range(len(ds))] == e0
    val = StateOKDataset(shards, "val", image_size=SIZE)
    v0 = [val.describe(i)["frames"] for i in range(len(val))]
    val.set_epoch(5)
    assert [val.describe(i)["frames"] for i in range(len(val))] == v0


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_persistent_workers_follows_set_epoch(shards, context):
    ds = StateLanguageDataset(shards, image_size=SIZE)
    loader = DataLoader(ds, batch_size=6, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        batches = list(loader)
        assert sum(b["images"].shape[0] for b in batches) == len(ds)
        assert batches[0]["images"].shape == (6, 3, SIZE, SIZE) and batches[0]["lang_ids"].shape == (6, 20)
        want = torch.stack([ds[i]["images"] for i in range(6)])
        assert torch.equal(batches[0]["images"], want)  # workers read this epoch's frames


def test_distributed_sampler_partitions_the_epoch(shards):
    ds = StateDataset(shards, image_size=SIZE)
    parts = []
    for rank in range(2):
        s = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=21)
        s.set_epoch(3)
        parts.append(list(s))
    assert sorted(parts[0] + parts[1]) == list(range(len(ds)))
    s = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=21)
    s.set_epoch(3)
    assert list(s) == parts[0]


def test_mixture_of_ssv2_shards_and_episodes(shards, episodes_root, lm_dir):
    eps = EpisodeSource(episodes_root, camera="wrist", tokenizer=str(lm_dir))
    ds = StateLanguageDataset([(shards, 0.7), (eps, 0.3)], image_size=SIZE, epoch_size=200, seed=1)
    assert len(ds) == 200
    sources = [ds.describe(i)["source"] for i in range(len(ds))]
    assert sources.count("ssv2") == 140 and sources.count("episodes") == 60
    i_ep = sources.index("episodes")
    assert ds[i_ep]["images"].shape == ds[0]["images"].shape == (3, SIZE, SIZE)
    cap = ds.describe(i_ep)["caption"]
    assert cap in {"put the block in the bowl", "open the drawer", "close the cabinet door", "press the button"}


def test_bad_dataset_arguments(shards, episodes_root, lm_dir):
    with pytest.raises(ValueError, match="unknown model 'v-cnd'"):
        dataset_for("v-cnd", shards)
    with pytest.raises(ValueError, match="normalization must be"):
        StateDataset(shards, normalization="imagenet21k")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        StateDataset(shards, "test")
    short = EpisodeSource(episodes_root, tokenizer=str(lm_dir), max_lang_len=8)
    with pytest.raises(ValueError, match=r"max_lang_len \[8, 20\]"):
        StateLanguageDataset([shards, short])
    with pytest.raises(ValueError, match="no val clips"):
        StateDataset(short, "val")


@pytest.mark.parametrize("model", ["v-cond", "v-dual", "v-gen", "r-mvp", "r-r3m-vit"])
def test_batches_feed_the_encoders(shards, lm_dir, model):
    """A DataLoader batch of each format is what the matching tiny encoder's compute_loss takes."""
    from robolearn.encoders.registry import build

    torch.manual_seed(0)
    net = build(f"{model}-tiny", language_model=str(lm_dir))
    ds = dataset_for(model, shards, image_size=net.config.image_size)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))))
    loss, metrics = net(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
