"""Lineage cards at tiny size: a chain episodes -> checkpoint-like folder -> eval-like run, rendered as text,
JSON and HTML/SVG; inputs without cards, missing and changed inputs, edited artifacts, cycles, bad cards."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from robolearn.data.synthetic import SyntheticConfig, make_dataset
from robolearn.lineage import (
    CARD_NAME,
    LineageError,
    build_graph,
    file_digest,
    read_card,
    to_html,
    to_text,
    write_card,
)
from robolearn.lineage.commands import LineageCommand, lineage_cmd


def _chain(root: Path) -> tuple[Path, Path, Path]:
    """Real episodes (the synthetic writer writes their card), a checkpoint-like folder, an eval-like run."""
    data = root / "demos"
    make_dataset(data, SyntheticConfig(num_episodes=2, steps=3, size=16, cameras=("wrist",)))
    ckpt = root / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"weights-1")
    (ckpt / "config.json").write_text('{"arch": "tiny"}')
    write_card(ckpt, "encoder", [data, {"path": "hub/some-lm", "kind": "lm"}], {"lr": 1e-3}, {"val_loss": 0.25})
    run = root / "eval"
    run.mkdir()
    (run / "results.json").write_text('{"success_rate": 0.5}')
    write_card(run, "eval-run", [ckpt], {"episodes": 4}, {"success_rate": 0.5, "ci95": [0.15, 0.85]}, ["results.json"])
    return data, ckpt, run


def test_chain_text_json_html(tmp_path, capsys):
    data, ckpt, run = _chain(tmp_path)
    card = read_card(data)
    assert card["kind"] == "episodes" and card["figures"]["episodes"] == 2 and card["id_method"]["count"] == 2
    assert card["config"]["steps"] == 3  # the dataclass config
    assert read_card(run)["inputs"][0] == {
        "path": str(ckpt.resolve()),
        "kind": "encoder",
        "id": read_card(ckpt)["id"],
        "rel": "../ckpt",
    }
    g = build_graph(run)
    assert not g.problems
    assert {n.kind for n in g.nodes.values()} == {"eval-run", "encoder", "episodes", "lm"}
    assert [e.status for e in g.edges] == ["ok", "by name", "ok"]

    assert lineage_cmd(LineageCommand(run, html=tmp_path / "g.html", strict=True)) == 0
    text = capsys.readouterr().out
    for want in ("eval-run", "encoder", "episodes", read_card(ckpt)["id"][:12], "success_rate=0.5", "val_loss=0.25"):
        assert want in text
    assert "unknown: input hub/some-lm: does not exist" in text and "0 problems" in text

    page = (tmp_path / "g.html").read_text()
    svg = ET.fromstring(page[page.index("<svg") : page.index("</svg>") + 6])
    rects = svg.findall(".//{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 4 and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # offline
    assert "Transparency" in page and "code commit" in page

    assert lineage_cmd(LineageCommand(run, json=True)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["root"] == str(run.resolve()) and len(doc["edges"]) == 3
    assert doc["nodes"][str(data.resolve())]["known"]["config"] is True
    assert doc["nodes"]["hub/some-lm"]["unknowns"][0].startswith("no lineage card")


def test_cli_entry(tmp_path, capsys):
    from robolearn.cli import main

    _, _, run = _chain(tmp_path)
    assert main(["lineage", str(run / CARD_NAME), "--html", str(tmp_path / "x.html")]) == 0
    assert "eval-run" in capsys.readouterr().out and (tmp_path / "x.html").is_file()
    assert main(["lineage", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_input_without_card_is_unknown_and_missing_input_reported(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.bin").write_bytes(b"x")
    out = tmp_path / "made"
    out.mkdir()
    (out / "f.txt").write_text("y")
    write_card(out, "episodes", [raw], {"a": 1}, {"n": 1})
    card = read_card(out)
    assert card["inputs"][0]["kind"] == "unknown" and card["inputs"][0]["id"] == "unknown"
    assert any("has no lineage card" in u for u in card["unknowns"])
    g = build_graph(out)
    assert g.edges[0].status == "no card" and not g.nodes[str(raw.resolve())].known["command"]
    shutil.rmtree(raw)
    g = build_graph(out)
    assert g.edges[0].status == "missing" and "not on disk" in g.problems[0]
    assert lineage_cmd(LineageCommand(out, strict=True)) == 1
    assert "MISSING" in capsys.readouterr().out


def test_changed_input_and_modified_artifact(tmp_path, capsys):
    data, ckpt, run = _chain(tmp_path)
    (ckpt / "model.safetensors").write_bytes(b"weights-2")  # edited, card not rewritten
    g = build_graph(run)
    assert any("modified after its card" in p for p in g.problems)
    assert not build_graph(run, verify=False).problems
    old = read_card(ckpt)["id"]
    write_card(ckpt, "encoder", [data], {"lr": 1e-3}, {"val_loss": 0.2})  # retrained: a new card, a new id
    g = build_graph(run)
    edge = next(e for e in g.edges if e.input == str(ckpt.resolve()))
    assert edge.status == "changed" and old[:12] in edge.note and read_card(ckpt)["id"][:12] in edge.note
    assert lineage_cmd(LineageCommand(run)) == 0
    assert "CHANGED SINCE" in capsys.readouterr().out
    (data / "episode_000000.h5").write_bytes(b"truncated")
    assert any(str(data.resolve()) in p and "modified after" in p for p in build_graph(run).problems)


def test_moved_tree_keeps_ids_and_links(tmp_path):
    _, ckpt, run = _chain(tmp_path / "a")
    moved = Path(shutil.move(tmp_path / "a", tmp_path / "b"))
    g = build_graph(moved / "eval")
    assert not g.problems and str((moved / "ckpt").resolve()) in g.nodes
    assert g.nodes[str((moved / "ckpt").resolve())].id == read_card(moved / "ckpt")["id"]


def test_cycles_refused(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "x").write_text(d.name)
    write_card(a, "encoder", [], {}, {})
    write_card(b, "policy", [a], {}, {})
    with pytest.raises(LineageError, match="cycle"):
        write_card(a, "encoder", [b], {}, {})  # a made from b, made from a
    with pytest.raises(LineageError, match="cycle"):
        write_card(a, "encoder", [a / "x"], {}, {})  # from a file of itself
    doc = json.loads((a / CARD_NAME).read_text())  # a hand-edited card that loops
    doc["inputs"] = [{"path": str(b.resolve()), "kind": "policy", "id": "x"}]
    (a / CARD_NAME).write_text(json.dumps(doc))
    with pytest.raises(LineageError, match="cycle"):
        build_graph(b)
    assert lineage_cmd(LineageCommand(b)) == 2
    assert "cycle" in capsys.readouterr().err


def test_bad_cards_name_file_and_field(tmp_path, capsys):
    d = tmp_path / "art"
    d.mkdir()
    (d / CARD_NAME).write_text("{not json")
    with pytest.raises(LineageError, match=f"{CARD_NAME}: not readable as JSON"):
        read_card(d)
    (d / CARD_NAME).write_text(json.dumps({"format": "robolearn.lineage/1", "kind": "x", "id": 3}))
    with pytest.raises(LineageError, match="field 'id' is 3, expected a str"):
        build_graph(d)
    assert lineage_cmd(LineageCommand(d)) == 2 and "field 'id'" in capsys.readouterr().err
    with pytest.raises(LineageError, match="not a folder"):
        write_card(tmp_path / "nope", "x")
    with pytest.raises(LineageError, match="no lineage.json"):
        build_graph(tmp_path)


def test_big_file_digest_samples_head_middle_tail(tmp_path):
    p = tmp_path / "big.bin"
    data = np.zeros(5 << 20, np.uint8)
    p.write_bytes(data.tobytes())
    base = file_digest(p)
    for offset in (0, len(data) // 2, len(data) - 1):
        changed = data.copy()
        changed[offset] = 1
        p.write_bytes(changed.tobytes())
        assert file_digest(p) != base
    p.write_bytes(data.tobytes())
    assert file_digest(p) == base


def test_suite_dataset_card_reuses_its_sha256_manifest(tmp_path):
    from robolearn.suite.dataset import META_FILE, load_dataset, write_dataset

    recs = [{"split": "train"}, {"split": "val"}]
    ds = write_dataset(tmp_path / "ds", "toy", 1, {"n": 2}, {"x": np.arange(2)}, recs)
    card = read_card(ds.folder)
    assert card["kind"] == "suite-dataset" and card["id_method"]["files"] == [META_FILE]
    assert card["figures"]["instances"] == 2
    load_dataset(ds.folder)  # the card beside the files does not disturb the hash check
    text = to_text(build_graph(ds.folder))
    assert "suite-dataset" in text and "0 problems" in text
    assert "<svg" in to_html(build_graph(ds.folder))


def test_a_card_above_describes_only_its_own_key_files(tmp_path):
    from robolearn.lineage import find_card, owner

    art = tmp_path / "corpus"
    (art / "videos").mkdir(parents=True)
    (art / "notes").mkdir()
    (art / "videos" / "1.webm").write_bytes(b"clip")
    (art / "notes" / "todo.txt").write_text("not a key file")
    write_card(art, "clip-corpus", [], {}, {"clips": 1}, ["videos/*.webm"])
    assert owner(art / "videos") == owner(art / "videos" / "1.webm") == art
    assert find_card(art / "videos") == art / CARD_NAME
    assert owner(art / "notes") is None and find_card(art / "notes" / "todo.txt") is None
    consumer = tmp_path / "shards"
    consumer.mkdir()
    write_card(consumer, "shards", [art / "videos", art / "notes"], {}, {"n": 1})
    kinds = [(i["kind"], i.get("card")) for i in read_card(consumer)["inputs"]]
    assert kinds == [("clip-corpus", str((art / CARD_NAME).resolve())), ("unknown", None)]
