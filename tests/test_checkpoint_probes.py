"""Every checkpoint loader against malicious and garbage files (issue 16): encoders (load(), `encoders
convert/info`), policies (load_policy, `eval --policy`, `rollout --policy`), BC resume (train_state.pt,
`train --resume`), the BC feature cache and pretraining resume.

Each probe checks that nothing executes (a pickle whose unpickling would create a marker file never does) and
that the refusal is a CheckpointError naming the file; CLI probes check exit code 2 with one line on stderr and
no traceback (main() returns instead of raising). docs/reliability.md (checkpoint loaders) lists the probes.
"""

from __future__ import annotations

import ast
import json
import pickle
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from robolearn.cli import main
from robolearn.encoders import CheckpointError, CheckpointMismatchError, build, load, save
from robolearn.encoders.files import read_torch_file
from robolearn.encoders.reference import to_reference_state_dict
from robolearn.policies import PolicyCheckpointError, PolicyConfig, build_policy, load_policy, save_policy

ROOT = Path(__file__).resolve().parents[1] / "robolearn"


class Evil:
    """Unpickling this creates `marker` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path: Path):
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a checkpoint file ran code"


def evil_pt(path: Path, marker: Path, wrap: Callable[[Any], Any] = lambda e: e, legacy: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if legacy:  # a plain pickle (torch.load's pre-zip format)
        path.write_bytes(pickle.dumps(wrap(Evil(marker)), protocol=2))
    else:
        torch.save(wrap(Evil(marker)), path)
    return path


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return rc, err


def assert_one_line(err: str, *needles: str) -> None:
    assert err and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


# ---------------------------------------------------------------------------------------------- encoders
@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save(build("r-mvp-tiny"), tmp_path_factory.mktemp("enc") / "ours")


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(src, dst))


def _bad_weights(kind: str, f: Path, marker: Path) -> None:
    data = f.read_bytes()
    state = load_file(str(f))
    if kind == "pickle":
        evil_pt(f, marker)
    elif kind == "garbage":
        f.write_bytes(b"\x89garbage, not a safetensors file" * 10)
    elif kind == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        f.write_bytes(b"")
    elif kind == "keys":
        k = sorted(state)[0]
        state["extra.weight"] = state.pop(k)
        save_file(state, str(f))
    elif kind == "shapes":
        k = next(k for k, v in sorted(state.items()) if v.ndim >= 1 and v.numel() > 1)
        state[k] = torch.zeros(3, 5)
        save_file(state, str(f))
    elif kind == "dtypes":
        k = next(k for k, v in sorted(state.items()) if v.is_floating_point())
        state[k] = state[k].to(torch.int32)
        save_file(state, str(f))


WEIGHT_CASES = {
    "pickle": "safetensors",
    "garbage": "safetensors",
    "truncated": "safetensors",
    "empty": "safetensors",
    "keys": "unexpected",
    "shapes": "mis-shaped",
    "dtypes": "dtype",
}


@pytest.mark.parametrize("kind", list(WEIGHT_CASES))
def test_encoder_bad_weights(kind, encoder_dir, tmp_path, marker, capsys):
    d = _copy(encoder_dir, tmp_path / "enc")
    _bad_weights(kind, d / "model.safetensors", marker)
    with pytest.raises(CheckpointError, match=re.escape(str(d / "model.safetensors"))) as err:
        load(d)
    assert WEIGHT_CASES[kind] in str(err.value)
    if kind in ("keys", "shapes", "dtypes"):
        assert isinstance(err.value, CheckpointMismatchError)
    rc, msg = cli(capsys, "encoders", "info", d)
    assert rc == 2
    assert_one_line(msg, "model.safetensors", WEIGHT_CASES[kind])


CONFIG_CASES = {
    "not-json": ("{not json", "not valid JSON"),
    "list": ("[1, 2]", "expected an object"),
    "binary": (b"\xff\xfe\x00garbage", "not valid JSON"),
    "types": ({"encoder_dim": "big"}, "wrong type for field(s) encoder_dim='big' (expected int)"),
    "bool-int": ({"encoder_depth": True}, "encoder_depth=True (expected int)"),
    "arch": ({"arch": "v-nope"}, "EncoderConfig.arch='v-nope': expected one of"),
    "no-arch": ({"arch": None}, "missing field 'arch'"),
    "field": ({"colour": "red"}, "unknown encoder config field(s) ['colour']"),
}


@pytest.mark.parametrize("kind", list(CONFIG_CASES))
def test_encoder_bad_config(kind, encoder_dir, tmp_path, capsys):
    d = _copy(encoder_dir, tmp_path / "enc")
    f = d / "config.json"
    change, expected = CONFIG_CASES[kind]
    if isinstance(change, dict):
        doc = json.loads(f.read_text())
        doc.update(change)
        doc = {k: v for k, v in doc.items() if v is not None}
        f.write_text(json.dumps(doc))
    else:
        f.write_bytes(change if isinstance(change, bytes) else change.encode())
    with pytest.raises(CheckpointError, match=re.escape(str(f))) as err:
        load(d)
    assert expected in str(err.value)
    rc, msg = cli(capsys, "encoders", "info", d)
    assert rc == 2
    assert_one_line(msg, "config.json", expected)


def test_encoder_missing_files(encoder_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = {tmp_path / "empty": "no checkpoint found", tmp_path / "nope": "does not exist"}
    only_config = _copy(encoder_dir, tmp_path / "only_config")
    (only_config / "model.safetensors").unlink()
    cases[only_config] = "missing model.safetensors"
    only_weights = _copy(encoder_dir, tmp_path / "only_weights")
    (only_weights / "config.json").unlink()
    cases[only_weights] = "missing config.json"
    cases[only_weights / "model.safetensors"] = "no config.json next to it"
    for path, expected in cases.items():
        with pytest.raises(CheckpointError, match=expected) as err:
            load(path)
        assert isinstance(err.value, FileNotFoundError)
        rc, msg = cli(capsys, "encoders", "info", path)
        assert rc == 2
        assert_one_line(msg, expected)


def _reference_pt(tmp_path: Path, obj: Any) -> Path:
    f = tmp_path / "ref" / "r-mvp.pt"
    f.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, f)
    return f


@pytest.mark.parametrize("layout", ["file", "folder", "legacy", "in-optimizer-state", "config-beside"])
def test_encoder_malicious_reference_pt(layout, tmp_path, marker, capsys):
    """A reference .pt whose pickle would run code: refused by load(), `encoders info` and `encoders convert`
    (without --trust-pickle), whatever the layout; the message says how to proceed for a trusted file."""
    state = to_reference_state_dict(build("r-mvp-tiny").state_dict(), "r-mvp")
    f = tmp_path / "ref" / "r-mvp.pt"
    if layout == "in-optimizer-state":  # the weights are fine, the (ignored) optimizer state is not
        evil_pt(f, marker, lambda e: [state, {"state": e}])
    else:
        evil_pt(f, marker, lambda e: [e, {}], legacy=layout == "legacy")
    if layout == "config-beside":
        (f.parent / "r-mvp-config.json").write_text("{}")
    target = f.parent if layout in ("folder", "config-beside") else f
    with pytest.raises(CheckpointError, match=re.escape(str(f))) as err:
        load(target)
    msg = str(err.value)
    if layout != "legacy":
        assert "refused" in msg and "--trust-pickle" in msg
    for argv in (("encoders", "info", target), ("encoders", "convert", target, tmp_path / "out")):
        rc, msg = cli(capsys, *argv)
        assert rc == 2
        assert_one_line(msg, str(f))
    assert not (tmp_path / "out").exists()


def test_reference_pt_garbage_and_wrong_content(tmp_path, capsys):
    cases = {b"not a checkpoint": "could not read it", b"": "could not read it"}
    for i, (data, expected) in enumerate(cases.items()):
        f = tmp_path / f"x{i}.pt"
        f.write_bytes(data)
        with pytest.raises(CheckpointError, match=expected):
            load(f)
    wrong = {
        "tensors": ([{"a": 1}, {}], "must map parameter names to tensors"),
        "keys": ({"some.weight": torch.zeros(2)}, "cannot tell which model"),
        "type": (torch.zeros(3), "expected [state_dict, optimizer_state]"),
    }
    for name, (obj, expected) in wrong.items():
        f = _reference_pt(tmp_path / name, obj)
        with pytest.raises(CheckpointError, match=re.escape(expected)):
            load(f)
        rc, msg = cli(capsys, "encoders", "convert", f, tmp_path / "out")
        assert rc == 2
        assert_one_line(msg, expected)
    state = to_reference_state_dict(build("r-mvp-tiny").state_dict(), "r-mvp")
    f = _reference_pt(tmp_path / "cfg", [state, {}])
    (f.parent / "r-mvp-config.json").write_text(json.dumps({"encoder_depth": "two"}))
    with pytest.raises(CheckpointError, match="encoder_depth='two'"):
        load(f)


class Opaque:
    """A harmless non-tensor object, as a reference .pt's optimizer state may hold."""

    def __init__(self) -> None:
        self.note = "lr schedule"


def test_trust_pickle_is_the_only_route_to_unpickling(tmp_path, capsys):
    """A reference .pt holding a (harmless) object beyond tensors: refused by default, converted with
    --trust-pickle. In the code base no torch.load other than robolearn.encoders.files exists, and no call
    there or elsewhere passes weights_only=False except what `--trust-pickle` chooses."""
    torch.manual_seed(0)
    model = build("r-mvp-tiny").eval()
    f = _reference_pt(tmp_path, [to_reference_state_dict(model.state_dict(), "r-mvp"), {"extra": Opaque()}])
    rc, msg = cli(capsys, "encoders", "convert", f, tmp_path / "out")
    assert rc == 2 and "refused" in msg and "--trust-pickle" in msg
    assert main(["encoders", "convert", str(f), str(tmp_path / "out"), "--trust-pickle"]) == 0
    converted, _ = load(tmp_path / "out")
    assert all(torch.equal(converted.state_dict()[k], v) for k, v in model.state_dict().items())
    # the source tree (calls, read with ast): torch.load only in robolearn.encoders.files, weights_only=False
    # passed nowhere, no pickle / joblib / dill loads, no np.load(allow_pickle=True)
    calls: dict[str, list[str]] = {}
    for p in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
            where = str(p.relative_to(ROOT))
            if name == "torch.load":
                calls.setdefault("torch.load", []).append(where)
            if kw.get("weights_only") == "False" or kw.get("allow_pickle") == "True":
                calls.setdefault("unsafe keyword", []).append(f"{where}: {ast.unparse(node)}")
            if re.fullmatch(r"(pickle|cPickle|dill|joblib|cloudpickle|pd|pandas)\.(loads?|read_pickle)", name):
                calls.setdefault("pickle", []).append(where)
    assert sorted(set(calls.pop("torch.load"))) == ["encoders/files.py"]
    unsafe = calls.pop("unsafe keyword", [])  # read_torch_file's weights_only=False branch, nothing else
    assert unsafe == ["encoders/files.py: torch.load(path, map_location='cpu', weights_only=False)"], unsafe
    assert not calls, calls


# ---------------------------------------------------------------------------------------------- policies
@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_policy(
        build_policy(PolicyConfig(encoder="scratch-cnn", image_size=32)), tmp_path_factory.mktemp("pol") / "p"
    )


@pytest.fixture(scope="module")
def vit_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_policy(
        build_policy(PolicyConfig(encoder="r-mvp-tiny", cameras=["wrist"], image_size=32)),
        tmp_path_factory.mktemp("vpol") / "p",
    )


def _policy_clis(capsys, d: Path, tmp_path: Path, *expected: str) -> None:
    """`robolearn eval --policy` and `robolearn rollout --policy` refuse it: exit 2, one line, no traceback."""
    rc, msg = cli(capsys, "eval", "--policy", d, "--out", tmp_path / "eval", "--no-progress")
    assert rc == 2
    assert_one_line(msg, *expected)
    rc, msg = cli(capsys, "rollout", "--policy", d, "--robot", "sim", "--out", tmp_path / "rollouts", "--dry-run")
    assert rc == 2
    assert_one_line(msg, *expected)
    assert not (tmp_path / "eval" / "results.json").exists()


@pytest.mark.parametrize("kind", list(WEIGHT_CASES))
def test_policy_bad_weights(kind, policy_dir, tmp_path, marker, capsys):
    d = _copy(policy_dir, tmp_path / "p")
    _bad_weights(kind, d / "model.safetensors", marker)
    expected = {"keys": "unexpected", "shapes": "mis-shaped", "dtypes": "wrong dtype"}.get(kind, "safetensors")
    with pytest.raises(PolicyCheckpointError, match=re.escape(str(d / "model.safetensors"))) as err:
        load_policy(d)
    assert expected in str(err.value)
    _policy_clis(capsys, d, tmp_path, "model.safetensors", expected)


def _edit(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for p in parents:
        doc = doc[p]
    if value is DELETE:
        del doc[last]
    else:
        doc[last] = value


DELETE = object()
POLICY_CONFIG_CASES = {
    "not-json": ("{not json", "not valid JSON"),
    "binary": (b"\x00\xff\xfe", "not valid JSON"),
    "list": ("[]", "expected an object"),
    "format": (("format", "other"), "expected 'robolearn.policy'"),
    "no-policy": (("policy", DELETE), "missing field 'policy'"),
    "policy-type": (("policy", [1]), "field 'policy' is [1], expected a JSON object"),
    "backbone-type": (("backbone", "x"), "field 'backbone' is 'x'"),
    "head-dim-type": (("head_input_dim", "64"), "field 'head_input_dim' is '64'"),
    "field-type": (("policy.image_size", "32"), "image_size='32' (expected int)"),
    "list-type": (("policy.cameras", "exterior_1"), "cameras='exterior_1' (expected list[str])"),
    "head-field-type": (("policy.head.hidden", 1.5), "hidden=1.5 (expected int)"),
    "unknown-encoder": (("policy.encoder", "v-nope"), "unknown encoder 'v-nope'"),
    "unknown-encoder-path": (("policy.encoder", "/nowhere/enc"), "does not exist"),
    "unknown-head": (("policy.head.name", "mystery"), "mystery"),
    "unknown-field": (("policy.colour", "red"), "unknown policy config field(s) ['colour']"),
    "head-dim": (("head_input_dim", 7), "trained on 7-d features"),
}


@pytest.mark.parametrize("kind", list(POLICY_CONFIG_CASES))
def test_policy_bad_config(kind, policy_dir, tmp_path, capsys):
    d = _copy(policy_dir, tmp_path / "p")
    f = d / "config.json"
    change, expected = POLICY_CONFIG_CASES[kind]
    if isinstance(change, tuple):
        doc = json.loads(f.read_text())
        _edit(doc, *change)
        f.write_text(json.dumps(doc))
    else:
        f.write_bytes(change if isinstance(change, bytes) else change.encode())
    with pytest.raises(PolicyCheckpointError, match=re.escape(str(d))) as err:
        load_policy(d)
    assert expected in str(err.value)
    _policy_clis(capsys, d, tmp_path, expected)


def test_policy_missing_files(policy_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = {tmp_path / "empty": "missing config.json", tmp_path / "nope": "no such policy checkpoint folder"}
    for name in ("config.json", "model.safetensors"):
        d = _copy(policy_dir, tmp_path / f"without-{name}")
        (d / name).unlink()
        cases[d] = f"missing {name}"
    for d, expected in cases.items():
        with pytest.raises(PolicyCheckpointError, match=expected):
            load_policy(d)
        _policy_clis(capsys, d, tmp_path, expected)


@pytest.mark.parametrize("overrides", [{}, {"weights_only": False}])
def test_policy_config_naming_a_malicious_encoder_checkpoint(overrides, vit_policy_dir, tmp_path, marker, capsys):
    """A policy config.json without the encoder's config points its encoder at a malicious .pt (optionally with
    encoder overrides that try to switch weights_only off): refused, nothing runs."""
    d = _copy(vit_policy_dir, tmp_path / "p")
    bad = evil_pt(tmp_path / "enc" / "r-mvp.pt", marker, lambda e: [e, {}])
    doc = json.loads((d / "config.json").read_text())
    doc["backbone"].pop("encoder_config", None)
    doc["policy"]["encoder_checkpoint"] = str(bad)
    doc["policy"]["encoder_overrides"] = overrides
    (d / "config.json").write_text(json.dumps(doc))
    expected = "unknown encoder config field(s) ['weights_only']" if overrides else "refused"
    with pytest.raises(PolicyCheckpointError, match=re.escape(expected)):
        load_policy(d)
    _policy_clis(capsys, d, tmp_path, expected)
    # the same smuggled override in a training config cannot reach load() either
    from robolearn.policies.backbones import build_backbone

    with pytest.raises(TypeError, match="weights_only"):
        build_backbone(
            PolicyConfig(encoder="r-mvp-tiny", encoder_checkpoint=str(bad), encoder_overrides={"weights_only": False})
        )


# ----------------------------------------------------------------------------------- BC resume, feature cache
def _train_state(marker: Path) -> dict[str, Any]:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))])
    return {
        "step": 20,
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "gen": torch.Generator().get_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }


TRAIN_STATE_CASES = {
    "pickle": (lambda st, m: {**st, "optimizer": Evil(m)}, "refused"),
    "pickle-top": (lambda st, m: Evil(m), "refused"),
    "legacy-pickle": ("legacy", "refused"),
    "garbage": (b"garbage" * 20, "could not read it"),
    "truncated": ("truncated", "could not read it"),
    "missing": (None, "missing"),
    "list": (lambda st, m: [st], "holds a list, expected a dict"),
    "no-optimizer": (lambda st, m: {k: v for k, v in st.items() if k != "optimizer"}, "missing key(s) ['optimizer']"),
    "step-type": (lambda st, m: {**st, "step": "20"}, "step (expected an integer"),
    "rng-type": (lambda st, m: {**st, "torch_rng": torch.zeros(3)}, "torch_rng (expected a uint8 tensor"),
}


@pytest.mark.parametrize("kind", list(TRAIN_STATE_CASES))
def test_bc_train_state(kind, tmp_path, marker):
    from robolearn.policies.train import load_train_state

    ck = tmp_path / "checkpoints" / "step_20"
    ck.mkdir(parents=True)
    f = ck / "train_state.pt"
    change, expected = TRAIN_STATE_CASES[kind]
    st = _train_state(marker)
    if callable(change):
        torch.save(change(st, marker), f)
    elif change == "legacy":
        evil_pt(f, marker, legacy=True)
    elif change == "truncated":
        torch.save(st, f)
        f.write_bytes(f.read_bytes()[:300])
    elif isinstance(change, bytes):
        f.write_bytes(change)
    with pytest.raises(CheckpointError, match=re.escape(str(f))) as err:
        load_train_state(ck)
    assert expected in str(err.value)
    if kind == "missing":
        assert isinstance(err.value, FileNotFoundError)


def test_bc_train_state_of_earlier_runs_still_loads(tmp_path):
    """train_state.pt as every earlier version wrote it (numpy and python RNG states included): read with
    weights_only=True, every value back exactly."""
    from robolearn.policies.train import load_train_state

    ck = tmp_path / "step_20"
    ck.mkdir()
    st = _train_state(tmp_path / "unused")
    torch.save(st, ck / "train_state.pt")
    back = load_train_state(ck)
    assert back["python_rng"] == st["python_rng"] and back["step"] == 20
    assert torch.equal(back["torch_rng"], st["torch_rng"]) and torch.equal(back["gen"], st["gen"])
    assert all(
        np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
        for a, b in zip(back["numpy_rng"], st["numpy_rng"])
    )


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny expert demos and a 4-step BC run with a checkpoint at step 2 (scratch CNN: no encoder)."""
    from robolearn.collection.expert_demos import record_expert_demos

    root = tmp_path_factory.mktemp("bc")
    demos = root / "demos"
    record_expert_demos(demos, "press-button", [(0, 0)], 2, cameras=("wrist",), size=32)
    assert (
        main(
            [
                "train",
                "--data",
                str(demos),
                "--out",
                str(root / "run"),
                "--policy.encoder",
                "scratch-cnn",
                "--policy.cameras",
                "wrist",
                "--policy.image-size",
                "32",
                "--steps",
                "4",
                "--save-every",
                "2",
                "--batch-size",
                "4",
                "--no-progress",
                "--feature-cache",
                "none",
            ]
        )
        == 0
    )
    return demos, root / "run"


def test_train_resume_cli_refuses_a_malicious_train_state(bc_run, tmp_path, marker, capsys):
    demos, run = bc_run
    out = _copy(run, tmp_path / "run")
    last = max((out / "checkpoints").glob("step_*"), key=lambda p: int(p.name[5:]))
    st = read_torch_file(last / "train_state.pt", "robolearn's own train state")  # tensors, plain values, numpy
    torch.save({**st, "optimizer": Evil(marker)}, last / "train_state.pt")
    args = [
        "train",
        "--data",
        demos,
        "--out",
        out,
        "--policy.encoder",
        "scratch-cnn",
        "--policy.cameras",
        "wrist",
        "--policy.image-size",
        "32",
        "--steps",
        "6",
        "--save-every",
        "2",
        "--batch-size",
        "4",
        "--no-progress",
        "--feature-cache",
        "none",
        "--resume",
    ]
    rc, msg = cli(capsys, *args)
    assert rc == 2
    assert_one_line(msg, str(last / "train_state.pt"), "refused", "without --resume")
    (last / "train_state.pt").unlink()
    rc, msg = cli(capsys, *args)
    assert rc == 2
    assert_one_line(msg, "train_state.pt: missing")
    # a checkpoint whose policy weights are garbage: named, exit 2
    torch.save(st, last / "train_state.pt")
    (last / "model.safetensors").write_bytes(b"junk")
    rc, msg = cli(capsys, *args)
    assert rc == 2
    assert_one_line(msg, str(last / "model.safetensors"), "safetensors")


@pytest.mark.parametrize("kind", ["pickle", "garbage", "wrong-layout", "wrong-length"])
def test_feature_cache_file_is_never_trusted(kind, tmp_path, marker, monkeypatch, caplog):
    from robolearn.policies import features

    policy = build_policy(PolicyConfig(encoder="scratch-cnn", cameras=["wrist"], image_size=32))
    n = 3
    good = {
        "tokens": [torch.zeros(n, 4, 8, dtype=torch.float16)],
        "proprio": torch.zeros(n, 15),
        "action": torch.zeros(n, 1, 7),
        "action_pad": torch.zeros(n, 1, dtype=torch.bool),
    }
    calls = []
    monkeypatch.setattr(features, "compute_features", lambda *a, **k: calls.append(1) or good)
    dataset = [None] * n
    f = tmp_path / f"{features.cache_key(policy, [], 1)}.pt"
    if kind == "pickle":
        evil_pt(f, marker, lambda e: {"tokens": e})
    elif kind == "garbage":
        f.write_bytes(b"junk")
    elif kind == "wrong-layout":
        torch.save({"tokens": "x", "proprio": torch.zeros(n)}, f)
    else:
        torch.save({**good, "action": torch.zeros(n + 1, 1, 7)}, f)
    with caplog.at_level("WARNING", logger="robolearn.policies.features"):
        feats = features.cached_features(policy, dataset, [], 1, tmp_path)
    assert calls == [1] and feats is good
    assert str(f) in caplog.text and "recomputing" in caplog.text
    # the rewritten cache is used next time
    assert features.cached_features(policy, dataset, [], 1, tmp_path)["proprio"].shape == (n, 15) and calls == [1]


# ----------------------------------------------------------------------------------------- pretraining resume
@pytest.fixture
def pretrain_ckpt(tmp_path: Path) -> tuple[Path, torch.nn.Module, Any]:
    from robolearn.pretrain.checkpoint import Retention, save_checkpoint
    from robolearn.pretrain.distributed import DistInfo

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = torch.optim.AdamW(model.parameters())
    model(torch.zeros(2, 4)).sum().backward()
    opt.step()
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    state = {
        "step": 5,
        "epoch": 1,
        "micro_in_epoch": 3,
        "epoch_end": False,
        "optimizer": opt.state_dict(),
        "world_size": 1,
        "train_config": {"lr": 1e-3, "betas": (0.9, 0.95)},
    }
    path = save_checkpoint(tmp_path / "run", 5, model, state, info, Retention(keep_last=2))
    return path, model, info


PRETRAIN_CASES = {
    "state-pickle": ("state.pt", lambda m: {"step": Evil(m)}, "refused"),
    "state-garbage": ("state.pt", b"junk", "could not read it"),
    "state-missing": ("state.pt", None, "state.pt: missing"),
    "state-keys": ("state.pt", lambda m: {"step": 1}, "missing key(s)"),
    "state-types": ("state.pt", "types", "wrong value types"),
    "rng-pickle": ("rng-rank0.pt", lambda m: {"torch": Evil(m)}, "refused"),
    "rng-garbage": ("rng-rank0.pt", b"\x00" * 64, "could not read it"),
    "rng-missing": ("rng-rank0.pt", None, "no RNG state for rank 0"),
    "rng-keys": ("rng-rank0.pt", lambda m: {"torch": torch.get_rng_state()}, "'torch', 'numpy' and 'python'"),
    "weights-pickle": ("model.safetensors", lambda m: Evil(m), "safetensors"),
    "weights-garbage": ("model.safetensors", b"junk" * 10, "safetensors"),
    "weights-truncated": ("model.safetensors", "truncated", "safetensors"),
    "weights-keys": ("model.safetensors", "keys", "unexpected keys ['extra']"),
    "weights-shapes": ("model.safetensors", "shapes", "mis-shaped ['0.weight: file (2, 2)"),
    "weights-dtypes": ("model.safetensors", "dtypes", "wrong dtype ['0.weight: file torch.int64"),
    "complete-missing": ("COMPLETE", None, "not a complete checkpoint"),
}


@pytest.mark.parametrize("kind", list(PRETRAIN_CASES))
def test_pretrain_resume(kind, pretrain_ckpt, marker):
    from robolearn.pretrain.checkpoint import load_checkpoint

    path, model, info = pretrain_ckpt
    name, change, expected = PRETRAIN_CASES[kind]
    f = path / name
    before = {k: v.clone() for k, v in model.state_dict().items()}
    if change is None:
        f.unlink()
    elif callable(change):
        torch.save(change(marker), f)
    elif isinstance(change, bytes):
        f.write_bytes(change)
    elif change == "truncated":
        f.write_bytes(f.read_bytes()[:40])
    elif change == "types":
        st = torch.load(f, weights_only=True)
        torch.save({**st, "step": "5", "epoch_end": 0}, f)
    else:
        w = load_file(str(f))
        if change == "keys":
            w["extra"] = torch.zeros(1)
        elif change == "shapes":
            w["0.weight"] = torch.zeros(2, 2)
        else:
            w["0.weight"] = w["0.weight"].to(torch.int64)
        save_file(w, str(f))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, model, info)
    msg = str(err.value)
    assert str(path) in msg and expected in msg, msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was loaded


def test_pretrain_checkpoints_of_earlier_runs_load_and_prune_keeps_unreadable(pretrain_ckpt, marker):
    """state.pt / rng-rank0.pt as written so far (numpy RNG arrays, tuples) load with weights_only=True; a
    retention pass over an unreadable state.pt keeps that checkpoint and runs nothing."""
    from robolearn.pretrain.checkpoint import Retention, load_checkpoint, prune

    path, model, info = pretrain_ckpt
    state = load_checkpoint(path, model, info)
    assert state["step"] == 5 and state["train_config"]["betas"] == (0.9, 0.95)
    older = path.with_name("step-00000001")
    _copy(path, older)
    torch.save({"epoch_end": Evil(marker)}, older / "state.pt")
    assert prune(path.parents[1], Retention(keep_last=1, keep_every_epochs=1)) == []
    assert older.exists()


def test_pretrain_cli_turns_a_refused_checkpoint_into_exit_2(pretrain_ckpt, marker, monkeypatch, capsys):
    """`robolearn pretrain` resuming from a refused checkpoint: one line, exit 2 (the run itself is stubbed to
    what Trainer.fit does first: load the newest checkpoint)."""
    from robolearn.pretrain import commands
    from robolearn.pretrain.checkpoint import latest_checkpoint, load_checkpoint

    path, model, info = pretrain_ckpt
    torch.save({"step": Evil(marker)}, path / "state.pt")
    monkeypatch.setattr(
        commands, "pretrain", lambda cfg: load_checkpoint(latest_checkpoint(path.parents[1]), model, info)
    )
    rc, msg = cli(capsys, "pretrain", "--model", "r-mvp-tiny", "--data", path, "--run-dir", path.parents[1])
    assert rc == 2
    assert_one_line(msg, str(path / "state.pt"), "refused")
