"""Dataset tools: info, relabel, merge/filter, migrate (API and CLI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import pytest

from robolearn.data import edit, info, merge, migrate, relabel, schema
from robolearn.data.errors import EpisodeError, SchemaVersionError
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.synthetic import TASKS

EP0 = "episode_000000.h5"


def cli(*args: str) -> int:
    from robolearn.cli import main

    return main(["data", *map(str, args)])


def needs_select_paths():
    catalog = pytest.importorskip("robolearn.data.catalog")
    if not hasattr(catalog, "select_paths"):
        pytest.skip("robolearn.data.catalog.select_paths not available yet")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def set_version(path: Path, version: str) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = version


# ---- info ----------------------------------------------------------------------------------------------


def test_info_episode(small_dataset):
    path = small_dataset / EP0
    i = info.info(path)
    assert i["kind"] == "episode" and i["num_steps"] == 20
    assert i["duration_s"] == pytest.approx(20 / 15)
    m = i["metadata"]
    assert (m["task"], m["success"], m["household"], m["scene_id"]) == (TASKS[0], 1, "house_0", "scene_0")
    assert m["schema_version"] == schema.SCHEMA_VERSION and m["complete"] is True
    assert [c["name"] for c in i["cameras"]] == ["wrist", "exterior_1"]
    with h5py.File(path, "r") as f:
        wrist_bytes = int(f["cameras/wrist/rgb/index"][:, 1].sum())
        assert i["uuid"] == f.attrs["uuid"]
    wrist = i["cameras"][0]
    assert (wrist["encoding"], wrist["width"], wrist["height"]) == ("jpeg", 32, 32)
    assert (wrist["frames"], wrist["dropped"], wrist["bytes"]) == (20, 0, wrist_bytes)
    assert wrist["mean_bytes_per_frame"] == pytest.approx(wrist_bytes / 20)
    assert wrist["intrinsics"] and not wrist["depth"]
    assert i["fields"]["action/cartesian_velocity"] == {"shape": [20, 6], "dtype": "float64"}
    assert i["fields"]["observation/robot_state/joint_positions"]["shape"] == [20, 7]
    assert i["file_bytes"] == path.stat().st_size


def test_info_dataset(small_dataset):
    i = info.info(small_dataset)
    assert (i["episodes"], i["steps"]) == (6, 120)
    assert i["hours"] == pytest.approx(120 / 15 / 3600)
    assert (i["success"], i["failure"], i["unknown"], i["incomplete"]) == (5, 1, 0, 0)
    assert i["per_household"] == {"house_0": 4, "house_1": 2}
    assert i["per_scene"] == {"scene_0": 2, "scene_1": 2, "scene_2": 1, "scene_3": 1}
    assert i["per_lab"] == {"lab_a": 6} and sum(i["per_task"].values()) == 6
    assert i["length"] == {"min": 20, "mean": 20.0, "max": 20}
    assert set(i["cameras"]) == {"wrist", "exterior_1"}
    assert i["cameras"]["wrist"]["resolutions"] == ["32x32"]
    total = sum(p.stat().st_size for p in list_episodes(small_dataset))
    assert i["total_bytes"] == total and i["bytes_per_step"] == pytest.approx(total / 120)
    assert i["unreadable"] == []


def test_info_reports_unreadable_file(dataset_copy, capsys):
    (dataset_copy / "bogus.h5").write_text("this is not HDF5")
    i = info.info(dataset_copy)
    assert i["episodes"] == 6
    assert len(i["unreadable"]) == 1 and "bogus.h5" in i["unreadable"][0]["error"]
    capsys.readouterr()
    assert cli("info", dataset_copy) == 1
    out, err = capsys.readouterr()
    assert "UNREADABLE" in out and "bogus.h5" in out and "Traceback" not in out + err


def test_info_cli(small_dataset, capsys):
    assert cli("info", small_dataset / EP0) == 0
    out = capsys.readouterr().out
    assert "wrist" in out and "cartesian_velocity" in out and TASKS[0] in out
    assert cli("info", small_dataset, "--json") == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 6
    assert cli("info", small_dataset / "nope.h5") == 1
    assert "does not exist" in capsys.readouterr().err


# ---- relabel -------------------------------------------------------------------------------------------


def test_relabel_success_and_language(dataset_copy):
    path = dataset_copy / EP0
    r = relabel.relabel(path, success=False, language=["open the top drawer", "pull the top drawer"], who="alice")
    assert [c["field"] for c in r[0].changes] == ["success", "language"]
    with Episode(path) as ep:
        assert ep.attrs["success"] == 0 and ep.attrs["label_source"] == "relabel:alice"
        assert ep.instructions() == ["open the top drawer", "pull the top drawer"]
        anns = ep.attrs["language_annotations"]
        assert anns[0]["text"] == TASKS[0] and anns[0]["source"] == "operator"
        assert [(a["text"], a["source"], a["annotator"]) for a in anns[1:]] == [
            ("open the top drawer", "relabel", "alice"),
            ("pull the top drawer", "relabel", "alice"),
        ]
        hist = ep.attrs["label_history"]
        assert hist[0]["field"] == "success" and (hist[0]["old"], hist[0]["new"], hist[0]["who"]) == (1, 0, "alice")
        assert hist[1]["old"] == [TASKS[0]] and hist[1]["new"][0] == "open the top drawer" and hist[1]["time"]
        assert (ep.array("language/active") < 2).all()
    log = [json.loads(x) for x in (dataset_copy / "relabel.log").read_text().splitlines()]
    assert len(log) == 1 and log[0]["file"] == str(path) and log[0]["who"] == "alice"
    # the same labels again: nothing to change, the file is not rewritten
    before = path.read_bytes()
    assert relabel.relabel(path, success=False, who="alice")[0].changes == []
    assert path.read_bytes() == before
    assert len((dataset_copy / "relabel.log").read_text().splitlines()) == 1


@pytest.mark.parametrize("where", ["_append_history", "replace"])
def test_relabel_failure_leaves_original_untouched(dataset_copy, monkeypatch, where):
    path = dataset_copy / EP0
    before = snapshot(dataset_copy)

    def boom(*a, **k):
        raise RuntimeError("injected failure")

    if where == "replace":
        monkeypatch.setattr(edit.os, "replace", boom)
    else:
        monkeypatch.setattr(relabel, where, boom)  # after success/language were changed in the copy
    with pytest.raises(RuntimeError, match="injected"):
        relabel.relabel(path, success=False, language=["x"], who="alice")
    assert snapshot(dataset_copy) == before  # byte-identical, no temp file left behind, no log line


def test_relabel_list_and_cli(dataset_copy, capsys):
    paths = list_episodes(dataset_copy)[:2]
    relabel.relabel(paths, success="unknown", who="bob")
    for p in paths:
        with Episode(p) as ep:
            assert ep.attrs["success"] == -1 and ep.attrs["label_source"] == "relabel:bob"
    assert cli("relabel", paths[0], "--success", "true", "--language", "press it", "--who", "carol") == 0
    with Episode(paths[0]) as ep:
        assert ep.attrs["success"] == 1 and ep.instructions() == ["press it"]
        assert [h["who"] for h in ep.attrs["label_history"]] == ["bob", "carol", "carol"]
    assert cli("relabel", paths[0], "--success", "maybe") == 1
    assert "success must be" in capsys.readouterr().err


def test_relabel_refuses_bad_input(dataset_copy):
    with pytest.raises(ValueError, match="nothing to relabel"):
        relabel.relabel(dataset_copy / EP0)
    with pytest.raises(ValueError, match="instruction"):
        relabel.relabel(dataset_copy / EP0, language=[])
    set_version(dataset_copy / EP0, "9.9")
    with pytest.raises(SchemaVersionError):
        relabel.relabel(dataset_copy / EP0, success=True)


def test_relabel_filtered_dataset(dataset_copy):
    needs_select_paths()
    results = relabel.relabel(dataset_copy, success=True, who="dora", filters=["success=0"])
    assert len(results) == 1 and results[0].path.name == "episode_000003.h5"
    assert info.info(dataset_copy)["success"] == 6


# ---- merge / filter ------------------------------------------------------------------------------------


def test_merge_dedupes_identical_uuids(small_dataset, dataset_copy, tmp_path):
    out = tmp_path / "merged"
    rep = merge.merge([small_dataset, dataset_copy], out)
    assert rep.counts() == {"added": 6, "linked": 6, "copied": 0, "duplicates": 6, "unreadable": 0}
    label = small_dataset.name
    merged = list_episodes(out)
    assert [p.relative_to(out) for p in merged] == [Path(label) / f"episode_{i:06d}.h5" for i in range(6)]
    assert os.path.samefile(out / label / EP0, small_dataset / EP0)  # hard link
    meta = json.loads((out / "merge.json").read_text())
    assert meta["counts"]["added"] == 6 and meta["counts"]["duplicates"] == 6
    assert [s["path"] for s in meta["sources"]] == [str(small_dataset), str(dataset_copy)]
    assert meta["config"]["link"] is True
    # merging again adds nothing and keeps the earlier record
    rep2 = merge.merge([dataset_copy], out)
    assert rep2.counts()["added"] == 0 and rep2.counts()["duplicates"] == 6
    assert len(json.loads((out / "merge.json").read_text())["previous"]) == 1


def test_merge_refuses_conflicting_uuid(small_dataset, dataset_copy, tmp_path):
    relabel.relabel(dataset_copy / EP0, success=False, who="eve")  # same uuid, different content
    out = tmp_path / "merged"
    with pytest.raises(merge.MergeConflictError) as ei:
        merge.merge([small_dataset, dataset_copy], out)
    msg = str(ei.value)
    assert str(dataset_copy / EP0) in msg and str(small_dataset / EP0) in msg and "uuid" in msg
    assert not out.exists()  # nothing written


def test_merge_never_overwrites(small_dataset, tmp_path):
    out = tmp_path / "merged"
    dest = out / small_dataset.name / EP0
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"precious")
    with pytest.raises(merge.MergeConflictError, match="never overwrites"):
        merge.merge([small_dataset], out)
    assert dest.read_bytes() == b"precious"
    assert sorted(p.name for p in dest.parent.iterdir()) == [EP0]


def test_merge_copy_and_relabel_does_not_touch_source(small_dataset, tmp_path, capsys):
    out = tmp_path / "merged"
    assert cli("merge", small_dataset, "--out", out, "--copy") == 0
    assert "6 episodes" in capsys.readouterr().out
    assert not os.path.samefile(out / small_dataset.name / EP0, small_dataset / EP0)
    linked = tmp_path / "linked"
    merge.merge([small_dataset], linked)
    before = (small_dataset / EP0).read_bytes()
    relabel.relabel(linked / small_dataset.name / EP0, success=False, who="frank")
    assert (small_dataset / EP0).read_bytes() == before  # the atomic replace broke the hard link
    assert cli("merge", small_dataset) == 2


def test_filter_by_success(dataset_copy, tmp_path, capsys):
    needs_select_paths()  # (the catalog it builds goes into the source folder, so filter a private copy)
    out = tmp_path / "ok"
    rep = merge.filter_dataset(dataset_copy, out, ["success=1"])
    assert rep.counts()["added"] == 5
    names = [p.name for p in list_episodes(out)]
    assert names == [f"episode_{i:06d}.h5" for i in (0, 1, 2, 4, 5)]
    assert info.info(out)["failure"] == 0
    assert cli("filter", dataset_copy, "--out", tmp_path / "bad", "--where", "success=0") == 0
    assert [p.name for p in list_episodes(tmp_path / "bad")] == ["episode_000003.h5"]
    assert cli("filter", dataset_copy, "--out", tmp_path / "x") == 2
    capsys.readouterr()
    assert cli("filter", dataset_copy, "--out", tmp_path / "y", "--where", "no_such_column=1") == 1
    assert "Traceback" not in capsys.readouterr().err and not (tmp_path / "y").exists()


# ---- migrate -------------------------------------------------------------------------------------------


def _add_attr(f: h5py.File) -> None:
    f.attrs["migrated_from_0_9"] = True


def test_migrate_with_registered_migration(dataset_copy, monkeypatch, capsys):
    monkeypatch.setitem(schema.MIGRATIONS, "0.8", ("0.9", lambda f: f.attrs.__setitem__("step_0_8", 1)))
    monkeypatch.setitem(schema.MIGRATIONS, "0.9", (schema.SCHEMA_VERSION, _add_attr))
    old1, old2 = dataset_copy / "episode_000001.h5", dataset_copy / "episode_000002.h5"
    set_version(old1, "0.9")
    set_version(old2, "0.8")
    before = snapshot(dataset_copy)

    dry = migrate.migrate(dataset_copy, dry_run=True)
    assert [Path(u["path"]).name for u in dry.upgraded] == [old1.name, old2.name]
    assert snapshot(dataset_copy) == before
    assert cli("migrate", dataset_copy, "--dry-run") == 0
    assert "would upgrade 2" in capsys.readouterr().out

    rep = migrate.migrate(dataset_copy)
    assert len(rep.upgraded) == 2 and len(rep.current) == 4 and rep.problems == []
    assert rep.upgraded[1]["steps"] == ["0.9", schema.SCHEMA_VERSION]
    after = snapshot(dataset_copy)
    untouched = [k for k in before if k not in (old1.name, old2.name)]
    assert all(after[k] == before[k] for k in untouched)
    for p in (old1, old2):
        with Episode(p) as ep:  # the reader accepts it again
            assert ep.attrs["schema_version"] == schema.SCHEMA_VERSION and ep.attrs["migrated_from_0_9"]
    with Episode(old2) as ep:
        assert ep.attrs["step_0_8"] == 1
    assert migrate.migrate(dataset_copy).upgraded == []  # already current: nothing to do


@pytest.mark.parametrize("version,hint", [("0.5", "no migration chain"), ("7.0", "newer than this robolearn")])
def test_migrate_unknown_version(dataset_copy, capsys, version, hint):
    path = dataset_copy / EP0
    set_version(path, version)
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError) as ei:
        migrate.migrate_file(path)
    assert str(path) in str(ei.value) and "schema_version" in str(ei.value) and version in str(ei.value)
    assert hint in str(ei.value)
    rep = migrate.migrate(dataset_copy)
    assert len(rep.problems) == 1 and len(rep.current) == 5
    assert cli("migrate", dataset_copy) == 1
    assert f"unknown schema version '{version}'" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_migration_failure_leaves_file(dataset_copy, monkeypatch):
    def broken(f: h5py.File) -> None:
        f.attrs["half_done"] = True
        raise KeyError("observation/foo")

    monkeypatch.setitem(schema.MIGRATIONS, "0.9", (schema.SCHEMA_VERSION, broken))
    path = dataset_copy / EP0
    set_version(path, "0.9")
    before = snapshot(dataset_copy)
    with pytest.raises(EpisodeError, match="migration 0.9 -> .* failed"):
        migrate.migrate_file(path)
    assert snapshot(dataset_copy) == before
