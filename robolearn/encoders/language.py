"""The frozen language model: a Hugging Face AutoModel/AutoTokenizer pair (hub id or local folder), loaded
lazily on first use, kept in eval mode with no gradients.

- `tokenize(captions) -> (ids, mask)`: padded/truncated to `max_len` (20); `n_truncated` counts captions
  that did not fit.
- `encode(ids, mask) -> last_hidden_state [B, L, D]`, through an LRU cache keyed by each row's token ids:
  the LM is frozen, so each distinct caption is run once (`cache_size` entries of L x D fp32 each, about
  61 KB for DistilBERT; 0 disables, < 0 is unbounded). For corpora with more distinct captions than the
  cache holds, precompute features once per caption and pass them as `lang_features` in the batch.
- `embed_tokens(ids)`: the LM's embedding layer only (token + position embeddings, non-contextual), used by
  V-Gen's decoder.

It is a plain object, not an nn.Module: an encoder's state dict, `.parameters()` and DDP never see it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class LanguageModelError(RuntimeError):
    pass


class LanguageModel:
    def __init__(self, name_or_path: str = "distilbert-base-uncased", max_len: int = 20, cache_size: int = 4096,
                 expected_dim: int | None = None, expected_vocab: int | None = None) -> None:
        self.name_or_path = str(name_or_path)
        self.max_len, self.cache_size = max_len, cache_size
        self.expected_dim, self.expected_vocab = expected_dim, expected_vocab
        self._model: Any = None
        self._tokenizer: Any = None
        self._cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0, "lm_calls": 0}
        self.n_truncated = 0

    def __repr__(self) -> str:
        state = "loaded" if self._model is not None else "not loaded"
        return f"LanguageModel({self.name_or_path!r}, max_len={self.max_len}, {state})"

    # --- lazy loading -------------------------------------------------------------------------------------
    def _hint(self) -> str:
        return (f"could not load the language model {self.name_or_path!r}. Pass a local folder (e.g. a saved "
                f"distilbert-base-uncased, or robolearn.encoders.offline.write_language_model(dir) for tests) "
                f"as language_model=..., or make the Hugging Face hub reachable")

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.name_or_path)
            except (OSError, ValueError) as e:
                raise LanguageModelError(f"{self._hint()}: {e}") from e
        return self._tokenizer

    @property
    def model(self) -> Any:
        if self._model is None:
            from transformers import AutoModel
            try:
                model = AutoModel.from_pretrained(self.name_or_path)
            except (OSError, ValueError) as e:
                raise LanguageModelError(f"{self._hint()}: {e}") from e
            model.eval()
            model.requires_grad_(False)
            dim = getattr(model.config, "dim", None) or getattr(model.config, "hidden_size", None)
            if self.expected_dim is not None and dim != self.expected_dim:
                raise LanguageModelError(f"language model {self.name_or_path!r} has hidden size {dim}, but the "
                                         f"encoder was built with language_dim={self.expected_dim}")
            vocab = getattr(model.config, "vocab_size", None)
            if self.expected_vocab is not None and vocab != self.expected_vocab:
                raise LanguageModelError(f"language model {self.name_or_path!r} has vocab_size {vocab}, but the "
                                         f"encoder was built with vocab_size={self.expected_vocab}")
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

    def null(self, batch: int, cls_id: int = 101,
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The "no language" input: [CLS] followed by padding (an all-padding input would give NaNs)."""
        return null_language(batch, self.max_len, cls_id, device)

    # --- ids -> features ----------------------------------------------------------------------------------
    @torch.compiler.disable      # a host-side cache lookup: keep it out of compiled graphs
    @torch.no_grad()
    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """last_hidden_state [B, L, D] for pre-tokenised ids, each distinct (ids, mask) row computed once."""
        if ids.shape != mask.shape or ids.ndim != 2:
            raise ValueError(f"language ids and mask must both be [B, L]; got {tuple(ids.shape)} and "
                             f"{tuple(mask.shape)}")
        ids_cpu, mask_cpu = ids.detach().long().cpu(), mask.detach().long().cpu()
        keys = [ids_cpu[i].numpy().tobytes() + mask_cpu[i].numpy().tobytes() for i in range(len(ids_cpu))]
        rows: dict[bytes, torch.Tensor] = {}
        missing: dict[bytes, int] = {}                      # key -> first row index needing the LM
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
            with torch.autocast(ids.device.type, enabled=False):      # fp32 features, whatever the caller's AMP
                out = model(input_ids=ids.long()[idx], attention_mask=mask.long()[idx]).last_hidden_state.float()
            for j, key in enumerate(missing):
                rows[key] = out[j].clone()
                if self.cache_size != 0:                          # < 0: unbounded
                    self._cache[key] = rows[key]
                    while 0 < self.cache_size < len(self._cache):
                        self._cache.popitem(last=False)
        return torch.stack([rows[k].to(ids.device) for k in keys])

    @torch.no_grad()
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Non-contextual token embeddings (embedding layer only, incl. its position embeddings) [B, L, D]."""
        model = self._on(ids.device)
        layer = getattr(model, "embeddings", None) or model.get_input_embeddings()
        with torch.autocast(ids.device.type, enabled=False):
            return layer(ids.long()).float()

    def clear_cache(self) -> None:
        self._cache.clear()

    def save(self, path: str | Path) -> None:
        """Write the tokenizer + model folder (e.g. to carry a hub model to an offline machine)."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)


def null_language(batch: int, length: int = 20, cls_id: int = 101,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(batch, length, dtype=torch.long, device=device)
    mask = torch.zeros(batch, length, dtype=torch.long, device=device)
    ids[:, 0], mask[:, 0] = cls_id, 1
    return ids, mask
