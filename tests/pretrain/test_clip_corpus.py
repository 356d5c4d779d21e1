"""The generated human-style corpus: SSv2 layout, checked outcomes, determinism across workers, resume, bad
input, and the way through the real `prepare --source ssv2` into the pretraining datasets."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from robolearn.pretrain.corpus import TEMPLATES, CorpusConfig, CorpusError, generate_corpus

TINY = dict(clips=10, size=48, frames=10, val_fraction=0.2, seed=3)  # one clip per template


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, vp8_available) -> Path:
    """10 tiny clips made in this process. Read-only."""
    out = tmp_path_factory.mktemp("corpus") / "c"
    rep = generate_corpus(CorpusConfig(out=out, **TINY))
    assert rep.generated == 10 and rep.failed == []
    return out


def _labels(out: Path) -> tuple[list[dict], list[dict], dict]:
    lab = out / "labels"
    train, val, meta = (json.loads((lab / f).read_text()) for f in ("train.json", "validation.json", "meta.json"))
    return train, val, meta


def test_layout_labels_and_record(corpus):
    train, val, meta = _labels(corpus)
    assert len(train) == 8 and len(val) == 2 and {e["id"] for e in val} == {"5", "10"}  # interleaved split
    for e in train + val:
        assert set(e) == {"id", "label", "template", "placeholders"}
        assert (corpus / "videos" / f"{e['id']}.webm").is_file()
        filled = e["template"]
        for p in e["placeholders"]:
            filled = filled.replace("[something]", p, 1)
        assert filled == e["label"] and "[something]" not in filled
    assert sorted(e["template"] for e in train + val) == sorted(TEMPLATES)  # balanced cycle
    rec = json.loads((corpus / "corpus.json").read_text())
    assert rec["counts"] == {"requested": 10, "clips": 10, "train": 8, "val": 2, "failed": 0}
    assert rec["versions"]["mujoco"] and rec["config"]["seed"] == 3 and len(rec["hash"]) == 64
    assert all(v == 1 for v in rec["templates"].values())
    assert {m["height"] for m in meta.values()} == {48} and all(m["width"] % 2 == 0 for m in meta.values())


def test_every_clip_outcome_was_checked_and_matches_its_caption(corpus):
    _, _, meta = _labels(corpus)
    by_t = {m["template"]: m["outcome"] for m in meta.values()}
    assert all(o["ok"] for o in by_t.values())
    lr, rl = by_t["Pushing [something] from left to right"], by_t["Pushing [something] from right to left"]
    assert lr["moved_m"] > 0.07 and lr["image_shift"] > 0.05 and rl["image_shift"] > 0.05 and lr["touched"]
    assert by_t["Picking [something] up"]["lifted_m"] > 0.08
    assert by_t["Putting [something] onto [something]"]["on_support"]
    assert by_t["Dropping [something] onto [something]"]["release_height_m"] > 0.06
    closer = by_t["Moving [something] closer to [something]"]
    assert closer["distance_after_m"] < closer["distance_before_m"] - 0.06
    away = by_t["Moving [something] away from [something]"]
    assert away["distance_after_m"] > away["distance_before_m"] + 0.06
    poke = next(o for t, o in by_t.items() if t.startswith("Poking"))
    assert poke["touched"] and poke["moved_m"] < 0.025
    assert by_t["Opening [something]"]["drawer_after_m"] - by_t["Opening [something]"]["drawer_before_m"] > 0.08
    assert by_t["Closing [something]"]["drawer_after_m"] < 0.03


@pytest.mark.parametrize("template", ["Pushing [something] from left to right", "Opening [something]"])
def test_a_hand_that_does_not_act_fails_the_check(template):
    from robolearn.envs.scenes import default_scenes
    from robolearn.pretrain.corpus import clip

    plan, scene, cam, hw, _ = clip.draw_clip(0, 1, 0, template, default_scenes()[:2], 32)
    plan.keys = [replace(k, pos=plan.keys[0].pos, grasp=None) for k in plan.keys]  # the hand stays put
    model = clip.build_model(plan, scene, cam, hw)
    frames, track = clip.simulate(model, plan, scene, hw, 8, 12)
    assert len(frames) == 8 and frames[0].shape == (32, hw[1], 3)
    assert not plan.check(track)["ok"]


def test_same_clips_with_two_worker_processes(corpus, tmp_path):
    out = tmp_path / "w2"
    rep = generate_corpus(CorpusConfig(out=out, workers=2, **{**TINY, "clips": 4}))
    assert rep.generated == 4
    for cid in ("1", "2", "3", "4"):
        assert (out / "videos" / f"{cid}.webm").read_bytes() == (corpus / "videos" / f"{cid}.webm").read_bytes()
    assert _labels(out)[0] == [e for e in _labels(corpus)[0] if int(e["id"]) <= 4]


def test_resume_skips_done_clips_and_grows(corpus, copy_tree):
    out = copy_tree(corpus, "resume")
    before = (out / "videos" / "7.webm").read_bytes()
    (out / "videos" / "7.webm").unlink()  # interrupted before its video landed
    (out / "meta" / "2.json").unlink()  # video there, record lost: redone
    (out / "labels" / "train.json").write_text("[]")  # labels are re-derived
    rep = generate_corpus(CorpusConfig(out=out, **{**TINY, "clips": 11}))
    assert (rep.generated, rep.skipped_done, rep.clips) == (3, 8, 11)
    assert (out / "videos" / "7.webm").read_bytes() == before
    train, val, _ = _labels(out)
    assert train[:8] == _labels(corpus)[0] and train[8]["id"] == "11" and len(val) == 2
    with pytest.raises(CorpusError, match="size"):
        generate_corpus(CorpusConfig(out=out, **{**TINY, "size": 64}))


def test_bad_config_names_field_and_choices(tmp_path):
    with pytest.raises(CorpusError, match=r"templates: unknown \['Juggling \[something\]'\].*Opening \[something\]"):
        generate_corpus(CorpusConfig(out=tmp_path, templates=["Juggling [something]"]))
    with pytest.raises(CorpusError, match=r"templates: unknown \[''\]"):
        generate_corpus(CorpusConfig(out=tmp_path, templates=[""]))
    with pytest.raises(CorpusError, match=r"scenes: unknown \['kitchen'\].*h000_s000"):
        generate_corpus(CorpusConfig(out=tmp_path, scenes=["kitchen"]))
    with pytest.raises(CorpusError, match="clips: expected an integer >= 1"):
        generate_corpus(CorpusConfig(out=tmp_path, clips=0))
    with pytest.raises(CorpusError, match="out"):
        generate_corpus(CorpusConfig())
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_errors_exit_2(tmp_path, capsys):
    from robolearn.pretrain.commands import corpus

    assert corpus(CorpusConfig(out=tmp_path / "x", scenes=["h9_s9"])) == 2
    assert "scenes: unknown ['h9_s9']" in capsys.readouterr().err


def _prepare(corpus: Path, out: Path, lm: Path, **kw):
    from robolearn.pretrain.ssv2 import prepare_ssv2

    lab = corpus / "labels"
    return prepare_ssv2(
        corpus / "videos",
        lab / "train.json",
        lab / "validation.json",
        out,
        tokenizer=str(lm),
        size=32,
        frames_per_shard=40,
        **kw,
    )


def test_prepare_reads_the_corpus_into_pretraining_datasets(corpus, lm_dir, tmp_path):
    from transformers import AutoTokenizer

    from robolearn.pretrain.datasets import dataset_for
    from robolearn.pretrain.shards import ShardSource

    max_len = 9
    rep = _prepare(corpus, tmp_path / "p", lm_dir, max_lang_len=max_len)
    assert rep["clips_in_index"] == 10 and rep["train"] == 8 and rep["val"] == 2 and rep["failed"] == []
    # captions over the LM's budget are reported, exactly those
    tok = AutoTokenizer.from_pretrained(str(lm_dir))
    train, val, _ = _labels(corpus)
    long_ids = {e["id"] for e in train + val if len(tok(e["label"])["input_ids"]) > max_len}
    assert long_ids and rep["truncated_captions"] == len(long_ids) and set(rep["truncated_ids"]) == long_ids
    src = ShardSource(tmp_path / "p")
    ds = dataset_for("v-cond", src, image_size=32)
    assert len(ds) == 8 * 5
    item = ds[0]
    assert tuple(item["images"].shape) == (3, 32, 32) and item["lang_ids"].shape == (max_len,)
    assert len(dataset_for("v-gen", src, "val", image_size=32)) == 2 * 4


def test_prepare_skips_and_reports_a_corrupt_clip(corpus, lm_dir, tmp_path):
    bad = tmp_path / "c"
    shutil.copytree(corpus, bad)
    data = (bad / "videos" / "3.webm").read_bytes()
    (bad / "videos" / "3.webm").write_bytes(data[:100] + np.random.default_rng(0).bytes(len(data) - 100))
    rep = _prepare(bad, tmp_path / "p", lm_dir)
    assert [f["id"] for f in rep["failed"]] == ["3"] and rep["clips_in_index"] == 9


def test_corpus_card_and_prepare_traces_back_to_it(corpus, lm_dir, tmp_path, copy_tree):
    import robolearn.pretrain.commands  # noqa: F401 (registers `pretrain prepare`)
    from robolearn.cli import main
    from robolearn.lineage import build_graph, read_card

    card = read_card(corpus)
    assert card["kind"] == "clip-corpus" and card["inputs"] == [] and card["config"]["seed"] == 3
    assert card["figures"]["clips"] == 10 and card["id_method"]["count"] == 10 + 3  # videos + 3 label files
    assert read_card(corpus / "videos")["id"] == card["id"] == read_card(corpus / "labels" / "train.json")["id"]
    src = copy_tree(corpus, "carded")
    lab, out = src / "labels", tmp_path / "shards"
    args = ["--videos", src / "videos", "--labels", lab / "train.json", "--validation", lab / "validation.json"]
    args += ["--out", out, "--tokenizer", lm_dir, "--size", "32", "--frames-per-shard", "40"]
    assert main(["pretrain", "prepare", "--source", "ssv2", *map(str, args)]) == 0
    shards = read_card(out)
    corpus_inputs = [i for i in shards["inputs"] if i["kind"] == "clip-corpus"]
    assert len(corpus_inputs) == 3 and {i["id"] for i in corpus_inputs} == {card["id"]}  # videos, train, val
    assert shards["figures"]["clips_in_index"] == 10
    g = build_graph(out)
    assert not g.problems and str(src.resolve()) in g.nodes  # one node for the corpus, not one per input path
    assert sorted(e.status for e in g.edges) == ["no card", "ok"]  # one edge for the corpus's 3 inputs + the tokenizer
    (src / "videos" / "4.webm").write_bytes(b"edited")
    assert any("modified after its card" in p for p in build_graph(out).problems)
