"""Helpers shared by the encoder tests."""

from __future__ import annotations

import torch

CAPTIONS = ["pick up the red cup", "open the drawer and close it again slowly", "push"]


def batch_for(model, b: int = 3, seed: int = 0) -> dict:
    """A fixed training batch for any tiny model (language from the session LM's tokenizer)."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    s = c.image_size
    if c.arch.startswith("r-r3m"):
        images = torch.rand(b, 5, 3, s, s, generator=g) * 255
    elif c.arch in ("v-dual", "v-gen"):
        images = torch.randn(b, 2, 3, s, s, generator=g)
    else:
        images = torch.randn(b, 3, s, s, generator=g)
    batch = {"images": images}
    if model.uses_language:
        ids, mask = model.language.tokenize((CAPTIONS * b)[:b])
        batch.update(lang_ids=ids, lang_mask=mask)
    return batch
