"""Data-locked quintet sampling, format expansion, language switches, mixtures."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.pretrain.sampling import (
    FORMATS,
    FRAMES_PER_EXAMPLE,
    ClipTable,
    clip_keys,
    expand,
    mixture_counts,
    plan_epoch,
    quintets,
)


def table(name: str, n_frames: list[int], val: int = 0, max_len: int = 6) -> ClipTable:
    n = len(n_frames)
    ids = np.zeros((n, max_len), np.int64)
    ids[:, 0], ids[:, 1] = 101, np.arange(n) + 200
    mask = (ids > 0).astype(np.int64)
    split = np.array([1] * val + [0] * (n - val))
    return ClipTable(
        name,
        [f"{name}-{i}" for i in range(n)],
        [f"caption {i}" for i in range(n)],
        np.array(n_frames),
        split,
        ids,
        mask,
    )


def test_quintets_respect_bounds_for_every_length():
    n = np.repeat(np.arange(5, 120), 40)
    keys = clip_keys("s", [str(i) for i in range(n.size)])
    for epoch in range(3):
        q = quintets(n, keys, seed=7, epoch=epoch)
        assert q.shape == (n.size, 5)
        lo = np.maximum(np.rint(0.2 * n), 1)
        hi = np.rint(0.8 * n)
        assert (q[:, 0] >= 0).all() and (q[:, 0] < lo).all()  # initial in [0, round(0.2 n))
        assert (q[:, 4] >= hi).all() and (q[:, 4] < n).all()  # final in [round(0.8 n), n)
        assert (np.diff(q, axis=1) > 0).all()  # strictly increasing: interior distinct, sorted, between


def test_quintets_are_deterministic_per_seed_epoch_clip():
    n = np.full(500, 45)
    keys = clip_keys("ssv2", [str(i) for i in range(500)])
    a, b = quintets(n, keys, 21, 3), quintets(n, keys, 21, 3)
    assert np.array_equal(a, b)
    c = quintets(n, keys, 21, 4)
    assert (a != c).any(axis=1).mean() > 0.9  # a new epoch redraws nearly every clip
    assert (quintets(n, keys, 22, 3) != a).any(axis=1).mean() > 0.9  # so does a new seed
    # a clip's frames do not depend on the other clips or their order
    sub = quintets(n[::-1][:50], keys[::-1][:50], 21, 3)
    assert np.array_equal(sub, a[::-1][:50])


def test_interior_frames_cover_the_range_uniformly():
    n = np.full(20000, 30)
    q = quintets(n, clip_keys("u", [str(i) for i in range(n.size)]), 0, 0)
    initial_counts = np.bincount(q[:, 0], minlength=6)[:6]  # initial in [0, 6)
    assert initial_counts.min() > 0.8 * n.size / 6
    assert set(np.unique(q[:, 4])) == set(range(24, 30))
    assert len(np.unique(q[:, 1:4])) >= 20  # interior frames reach the whole middle


def test_too_short_clips_are_refused():
    with pytest.raises(ValueError, match="clip 's-1' has 4 frames; a quintet needs at least 5"):
        table("s", [12, 4])
    with pytest.raises(ValueError, match="at least 5 frames"):
        quintets(np.array([4]), np.array([1], np.uint64), 0, 0)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_expansion_counts(fmt):
    t = table("s", [10, 20, 30])
    plan = plan_epoch([t], fmt, seed=1, epoch=0)
    assert len(plan) == 3 * FORMATS[fmt]  # 5 / 5 / 4 / 1 examples per clip
    assert plan.frames.shape == (len(plan), FRAMES_PER_EXAMPLE[fmt])
    assert np.bincount(plan.clip).tolist() == [FORMATS[fmt]] * 3
    q = quintets(t.n_frames, t.key, 1, 0)
    for c in range(3):
        rows = plan.frames[plan.clip == c]
        if fmt in ("state", "state+language"):
            assert rows[:, 0].tolist() == q[c].tolist()
        elif fmt == "state+ok":
            assert (rows[:, 0] == q[c, 0]).all() and rows[:, 1].tolist() == q[c, 1:].tolist()  # (initial, x)
        else:
            assert rows.tolist() == [q[c].tolist()]


def test_expand_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown batch format 'pairs'"):
        expand(np.zeros((1, 5), np.int64), "pairs")


def test_validation_split_is_separate_and_fixed():
    t = table("s", [10] * 8, val=3)
    train = plan_epoch([t], "state", "train", seed=1, epoch=0)
    val = plan_epoch([t], "state", "val", seed=1, epoch=0)
    assert set(train.clip) == set(range(3, 8)) and set(val.clip) == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown split 'test'"):
        plan_epoch([t], "state", "test")


def test_language_dropout_and_generation_draws():
    t = table("s", [12] * 40)
    p = plan_epoch([t], "state+ok", seed=3, epoch=0, lang_dropout=0.25, gen_ratio=0.5)
    assert p.drop_language.sum() == round(0.25 * 160) and p.generate.sum() == 80
    q = plan_epoch([t], "state+ok", seed=3, epoch=0, lang_dropout=0.25, gen_ratio=0.5)
    assert np.array_equal(p.generate, q.generate) and np.array_equal(p.drop_language, q.drop_language)
    r = plan_epoch([t], "state+ok", seed=3, epoch=1, lang_dropout=0.25, gen_ratio=0.5)
    assert not np.array_equal(p.generate, r.generate)
    with pytest.raises(ValueError, match="gen_ratio must be in"):
        plan_epoch([t], "state+ok", gen_ratio=1.5)


def test_mixture_weights_are_respected():
    a, b = table("ssv2", [20] * 300), table("episodes", [15] * 40)
    p = plan_epoch([a, b], "state+language", seed=5, epoch=0, weights=[0.7, 0.3], epoch_size=2000)
    assert len(p) == 2000 and p.counts == {0: 1400, 1: 600}
    # interleaved, not blocked: every window of 200 examples is close to 70/30
    share = np.array([(p.source[i : i + 200] == 1).mean() for i in range(0, 2000, 200)])
    assert np.abs(share - 0.3).max() < 0.12
    # the small source is cycled (each of its 200 examples used 3 times), the big one subsampled
    b_rows = np.stack([p.clip[p.source == 1], p.frames[p.source == 1, 0]], 1)
    _, uses = np.unique(b_rows, axis=0, return_counts=True)
    assert len(uses) == 200 and (uses == 3).all()
    assert len(np.unique(p.clip[p.source == 0])) > 250
    # reproducible per (seed, epoch); another epoch gives another schedule
    same = plan_epoch([a, b], "state+language", seed=5, epoch=0, weights=[0.7, 0.3], epoch_size=2000)
    assert np.array_equal(p.source, same.source) and np.array_equal(p.frames, same.frames)
    other = plan_epoch([a, b], "state+language", seed=5, epoch=1, weights=[0.7, 0.3], epoch_size=2000)
    assert not np.array_equal(p.source, other.source)
    assert other.counts == {0: 1400, 1: 600}


def test_mixture_default_size_and_bad_weights():
    a, b = table("a", [20] * 10), table("b", [15] * 6)
    p = plan_epoch([a, b], "state", seed=0, epoch=0)  # equal weights over all examples
    assert len(p) == 80 and p.counts == {0: 40, 1: 40}
    assert mixture_counts([10, 10, 10], [1, 1, 1], 10).tolist() == [4, 3, 3]
    with pytest.raises(ValueError, match="weights must be finite"):
        mixture_counts([5, 5], [0, 0], 10)
    with pytest.raises(ValueError, match="2 weights for 3 sources"):
        mixture_counts([5, 5, 5], [1, 1], 10)
    empty_val = table("c", [20] * 4)
    with pytest.raises(ValueError, match="source 1 has weight 1.0 but no examples"):
        plan_epoch([table("d", [20] * 4, val=2), empty_val], "state", "val", weights=[1, 1])
