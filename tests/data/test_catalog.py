"""Episode catalog: build, incremental update, error table, queries, splits and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import h5py
import pytest

from robolearn import cli
from robolearn.data import catalog as cat
from robolearn.data import schema
from robolearn.data.catalog import index as cat_index
from robolearn.data.errors import EpisodeError
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.synthetic import SyntheticConfig, write_episode
from robolearn.data.writer import WriterConfig

# small_dataset: episode i has scene_{i % 4}; house_0 = scenes 0, 1; house_1 = scenes 2, 3; success = i % 4 != 3;
# task = synthetic.TASKS[i % 6] (1: "open the drawer", 3: "press the button", 0 and 4 mention "block").
ALL = {0, 1, 2, 3, 4, 5}


def names(idx: set[int]) -> list[str]:
    return sorted(f"episode_{i:06d}.h5" for i in idx)


def rewrite_attrs(path: Path, **attrs) -> None:
    """Relabel the way tools must: modify a copy, fsync it, atomically replace the original."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.copy2(path, tmp)
    with h5py.File(tmp, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
    fd = os.open(tmp, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, path)


def add_episode(root: Path, index: int) -> Path:
    cfg = SyntheticConfig(steps=3, size=32, cameras=("wrist",))
    return write_episode(root / f"episode_{index:06d}.h5", cfg, index, WriterConfig(background_flush=False))


@pytest.fixture
def indexed(dataset_copy) -> Path:
    rep = cat.update(dataset_copy)
    assert (rep.added, rep.errors) == (6, [])
    return dataset_copy


@pytest.fixture
def cli_main(monkeypatch):
    """`robolearn ...` through the real CLI entry point."""
    return cli.main


# ---- build and update ------------------------------------------------------------------------------------
def test_build_reads_attributes_into_wal_catalog(indexed):
    catalog = indexed / cat.CATALOG_NAME
    assert catalog.is_file()
    with sqlite3.connect(catalog) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = cat.query(catalog)
    assert [r.path for r in rows] == [p.name for p in list_episodes(indexed)]
    for r in rows:
        with Episode(indexed / r.path) as ep:
            a = ep.attrs
            assert (r.uuid, r.household, r.scene_id, r.task, r.success) == (
                a["uuid"],
                a["household"],
                a["scene_id"],
                a["task"],
                a["success"],
            )
            assert r.num_steps == 20 and r.complete == 1 and r.schema_version == schema.SCHEMA_VERSION
            assert r.camera_names == ep.camera_names == ["wrist", "exterior_1"]
            assert r.language == ep.language[0]
            assert r.start_time == a["start_time"] and r.end_time == a["end_time"]
        st = (indexed / r.path).stat()
        assert (r.size, r.mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_incremental_update_add_modify_delete(indexed, monkeypatch):
    add_episode(indexed, 6)
    rewrite_attrs(indexed / "episode_000001.h5", success=0, label_source="relabel:test")
    (indexed / "episode_000005.h5").unlink()
    reads = []
    real = cat.read_entry
    monkeypatch.setattr(cat_index, "read_entry", lambda p, rel, st: reads.append(rel) or real(p, rel, st))

    rep = cat.update(indexed)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged, len(rep.errors)) == (1, 1, 1, 4, 0)
    assert sorted(reads) == ["episode_000001.h5", "episode_000006.h5"]  # only new and changed files are read
    rows = {r.path: r for r in cat.query(indexed)}
    assert sorted(rows) == names({0, 1, 2, 3, 4, 6})
    assert rows["episode_000001.h5"].success == 0
    assert rows["episode_000006.h5"].num_steps == 3 and rows["episode_000006.h5"].cameras == "wrist"

    reads.clear()
    again = cat.update(indexed)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 6) and not again.changed
    assert reads == []


def test_errors_table_and_unfinished(indexed):
    (indexed / "notes.h5").write_text("this is not an HDF5 file\n" * 10)
    data = (indexed / "episode_000000.h5").read_bytes()
    (indexed / "truncated.h5").write_bytes(data[: len(data) // 3])
    future = indexed / "future.h5"
    shutil.copy2(indexed / "episode_000002.h5", future)
    rewrite_attrs(future, schema_version="9.0")
    stripped = indexed / "sub" / "no_household.h5"
    stripped.parent.mkdir()
    shutil.copy2(indexed / "episode_000003.h5", stripped)
    with h5py.File(stripped, "r+") as f:
        del f.attrs["household"]
    (indexed / "episode_000009.h5.partial").write_bytes(b"")

    rep = cat.update(indexed)  # must not raise
    errs = {p: (fld, msg) for p, fld, msg in rep.errors}
    assert sorted(errs) == ["future.h5", "notes.h5", "sub/no_household.h5", "truncated.h5"]
    assert errs["notes.h5"][0] == "file" and "not a readable HDF5 file" in errs["notes.h5"][1]
    assert "truncated" in errs["truncated.h5"][1]
    assert errs["future.h5"] == ("attrs/schema_version", errs["future.h5"][1])
    assert "unknown schema version '9.0'" in errs["future.h5"][1]
    assert errs["sub/no_household.h5"][0] == "attrs/household" and "missing" in errs["sub/no_household.h5"][1]
    assert rep.unfinished == ["episode_000009.h5.partial"]
    assert rep.total == 6 and rep.new_errors == 4
    assert cat.errors(indexed) == rep.errors

    again = cat.update(indexed)  # unchanged broken files are not re-read, and stay reported
    assert again.new_errors == 0 and len(again.errors) == 4
    (indexed / "notes.h5").unlink()
    shutil.copy2(indexed / "episode_000004.h5", indexed / "truncated.h5")  # repaired: now indexable
    fixed = cat.update(indexed)
    assert sorted(p for p, _, _ in fixed.errors) == ["future.h5", "sub/no_household.h5"]
    assert fixed.added == 1 and fixed.total == 7 and fixed.duplicate_uuids == 1


def test_catalog_paths_survive_copy_and_custom_location(indexed, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(indexed, moved)
    assert cat.select_paths(moved, ["scene_id=scene_0"]) == [moved / n for n in names({0, 4})]
    custom = tmp_path / "elsewhere" / "my.sqlite"
    cat.update(indexed, custom)
    assert cat.select_paths(custom, ["scene_id=scene_0"]) == [indexed.absolute() / n for n in names({0, 4})]
    with pytest.raises(cat.CatalogError, match="belongs to dataset root"):
        cat.update(moved, custom)


# ---- queries ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "filters, expected",
    [
        (["household=house_1"], {2, 3}),
        (["lab=lab_a,lab_b"], ALL),
        (["lab=lab_b"], set()),
        (["scene_id=scene_0,scene_3"], {0, 3, 4}),
        (["scene_id!=scene_0"], {1, 2, 3, 5}),
        (["scene_id!=scene_0,scene_1"], {2, 3}),
        (["success=1"], {0, 1, 2, 4, 5}),
        (["success=0"], {3}),
        (["task~DRAWER"], {1}),
        (["task~drawer,button"], {1, 3}),
        (["task!~block"], {1, 2, 3, 5}),
        (["num_steps>=20"], ALL),
        (["num_steps<20"], set()),
        (["num_steps > 19", "success=1", "household=house_0"], {0, 1, 4, 5}),
        (["complete=true"], ALL),
        (["cameras~exterior"], ALL),
        (["start_time>=2000-01-01"], ALL),
        (["task~x' OR 1=1 --"], set()),  # values are bound parameters, never SQL
        ([], ALL),
    ],
)
def test_query_operators(indexed, filters, expected):
    assert [r.path for r in cat.query(indexed, filters)] == names(expected)


def test_query_sql_condition_and_limit(indexed):
    got = cat.query(indexed, ["household=house_0"], sql="success = 1 AND scene_id IN ('scene_1')")
    assert [r.path for r in got] == names({1, 5})
    assert [r.path for r in cat.query(indexed, [], limit=2)] == names({0, 1})
    with pytest.raises(cat.CatalogError, match="invalid SQL condition"):
        cat.query(indexed, [], sql="1); DELETE FROM episodes; --")
    with pytest.raises(cat.CatalogError, match="invalid SQL condition"):
        cat.query(indexed, [], sql="nosuchcolumn = 1")
    assert len(cat.query(indexed)) == 6


@pytest.mark.parametrize(
    "flt, message",
    [
        ("building=house_1", r"unknown column 'building'.*valid columns: path, uuid, lab, household"),
        ("household", "expected COLUMN OP VALUE"),
        ("num_steps>=many", "column num_steps is numeric, got 'many'"),
        ("num_steps>=1,2", "operator >= takes one value"),
        ("scene_id;DROP=1", "expected COLUMN OP VALUE"),
    ],
)
def test_invalid_filters_give_clear_errors(indexed, flt, message):
    with pytest.raises(cat.CatalogError, match=message):
        cat.query(indexed, [flt])


def test_missing_catalog_is_a_clear_error(dataset_copy):
    with pytest.raises(FileNotFoundError, match="robolearn data index"):
        cat.query(dataset_copy, [])
    # select_paths builds it on demand
    assert [p.name for p in cat.select_paths(dataset_copy, ["success=0"])] == names({3})


def test_entry_from_attrs_checks_types():
    attrs = {
        "format": "robolearn.episode",
        "schema_version": "1.0",
        "uuid": "u",
        "lab": "l",
        "household": "h",
        "scene_id": "s",
        "operator": "o",
        "robot_type": "r",
        "task": "t",
        "success": 1,
        "num_steps": 5,
        "control_hz": 15.0,
        "teleop_device": "vr",
        "start_time": "2024",
        "end_time": "2024",
        "complete": True,
        "cameras": '[{"name": "wrist"}]',
        "language_annotations": '[{"text": "hi"}]',
    }
    row = cat.Row(*cat.entry_from_attrs("a.h5", attrs, 10, 20))
    assert (row.cameras, row.language, row.complete, row.size) == ("wrist", "hi", 1, 10)
    with pytest.raises(EpisodeError, match="a.h5: attrs/num_steps: expected int, got str"):
        cat.entry_from_attrs("a.h5", {**attrs, "num_steps": "5"}, 1, 1)
    with pytest.raises(EpisodeError, match="attrs/format"):
        cat.entry_from_attrs("a.h5", {**attrs, "format": "robomimic"}, 1, 1)


# ---- splits ----------------------------------------------------------------------------------------------
def scenes_of(root: Path, paths: list[Path]) -> set[str]:
    by_path = {r.path: r.scene_id for r in cat.query(root)}
    return {by_path[p.relative_to(root.absolute()).as_posix()] for p in paths}


def test_split_by_scene_holdout(indexed):
    res = cat.split(indexed, by="scene", holdout=["scene_3", "house_0/scene_1"], name="holdout")
    train, val = cat.read_split(indexed, "holdout", "train"), cat.read_split(indexed, "holdout", "val")
    assert scenes_of(indexed, val) == {"scene_3", "scene_1"}
    assert scenes_of(indexed, train).isdisjoint(scenes_of(indexed, val))
    everything = sorted(p.name for p in train + val)
    assert everything == names(ALL) and len(set(everything)) == 6  # every episode exactly once
    txt = (indexed / "splits" / "holdout" / "train.txt").read_text().splitlines()
    assert txt == sorted(txt) == names({0, 2, 4})
    info = json.loads((indexed / "splits" / "holdout" / "split.json").read_text())
    assert info["counts"] == {"train": 3, "val": 3}
    assert info["groups"]["val"] == ["house_0/scene_1", "house_1/scene_3"] == res.val_groups
    assert info["config"]["holdout"] == ["scene_3", "house_0/scene_1"]
    with pytest.raises(cat.CatalogError, match="holdout scene 'scene_9' matches no episode.*house_0/scene_0"):
        cat.split(indexed, by="scene", holdout=["scene_9"])


def test_split_by_group_fraction_and_filters(indexed):
    res = cat.split(indexed, by="household", val_fraction=0.3, seed=3, filters=["success=1"])
    assert len(res.val_groups) == 1 and set(res.train_groups).isdisjoint(res.val_groups)
    assert sorted(res.train + res.val) == names({0, 1, 2, 4, 5})
    with pytest.raises(cat.CatalogError, match="cannot split by 'planet'"):
        cat.split(indexed, by="planet")


def test_random_split_is_deterministic_per_seed(indexed):
    a = cat.split(indexed, by="random", val_fraction=0.5, seed=7, name="a")
    b = cat.split(indexed, by="random", val_fraction=0.5, seed=7, name="b")
    assert (a.train, a.val) == (b.train, b.val) and len(a.val) == 3
    assert sorted(a.train + a.val) == names(ALL)
    others = {s: cat.split(indexed, by="random", val_fraction=0.5, seed=s, name=f"s{s}").val for s in range(8)}
    seed = next(s for s, val in others.items() if val != a.val)  # seeds do change the split
    assert cat.split(indexed, by="random", val_fraction=0.5, seed=7, name="a").val == a.val  # same: rewrite ok
    with pytest.raises(cat.CatalogError, match="different split with this name exists"):
        cat.split(indexed, by="random", val_fraction=0.5, seed=seed, name="a")
    c = cat.split(indexed, by="random", val_fraction=0.5, seed=seed, name="a", overwrite=True)
    assert [p.name for p in cat.read_split(indexed, "a", "val")] == c.val
    with pytest.raises(FileNotFoundError, match="splits here"):
        cat.read_split(indexed, "nope", "train")


def test_random_split_keeps_copies_of_one_episode_together(indexed):
    eps = list_episodes(indexed)
    (indexed / "copies").mkdir()
    for p in eps:  # every episode twice (same uuid): a copy must never land on the other side
        shutil.copy2(p, indexed / "copies" / p.name)
    for seed in range(6):
        res = cat.split(indexed, by="random", val_fraction=0.3, seed=seed, name=f"c{seed}")
        stem = lambda paths: {Path(p).name for p in paths}  # noqa: E731
        assert not stem(res.train) & stem(res.val), seed
        assert len(res.train) + len(res.val) == 2 * len(eps) and res.val and res.train


# ---- CLI -------------------------------------------------------------------------------------------------
def test_cli_round_trip(dataset_copy, cli_main, capsys):
    root = dataset_copy
    # query builds the missing catalog first
    assert (
        cli_main(["data", "query", str(root), "--where", "household=house_1", "task~press", "--format", "paths"]) == 0
    )
    out = capsys.readouterr()
    assert out.out.split() == [str(root.absolute() / n) for n in names({3})]
    assert (root / cat.CATALOG_NAME).is_file()

    add_episode(root, 6)
    assert cli_main(["data", "index", str(root)]) == 0
    out = capsys.readouterr().out
    assert "added 1" in out and "unchanged 6" in out
    assert json.loads((root / "index.config.json").read_text())["values"]["root"] == str(root)

    assert (
        cli_main(
            [
                "data",
                "query",
                str(root),
                "--where",
                "num_steps<10",
                "--format",
                "json",
                "--columns",
                "path",
                "num_steps",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"path": "episode_000006.h5", "num_steps": 3}]

    assert cli_main(["data", "query", str(root), "--where", "success=0", "--limit", "5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["path", "lab", "household"] and len(table) == 2

    assert cli_main(["data", "split", str(root), "--by", "scene", "--holdout", "scene_2", "--name", "s2"]) == 0
    assert "val 2 episodes" in capsys.readouterr().out
    assert (root / "splits" / "s2" / "split.config.json").is_file()
    assert [p.name for p in cat.read_split(root, "s2", "val")] == names({2, 6})

    (root / "bad.h5").write_bytes(b"\0" * 64)
    assert cli_main(["data", "index", str(root)]) == 1  # unreadable files are a problem worth an exit code
    assert "bad.h5: file: not a readable HDF5 file" in capsys.readouterr().out
    assert cli_main(["data", "query", str(root), "--where", "colour=red"]) == 2
    assert "unknown column 'colour'" in capsys.readouterr().err
    assert cli_main(["data", "split", str(root), "--holdout", "scene_42"]) == 2
    assert "matches no episode" in capsys.readouterr().err
