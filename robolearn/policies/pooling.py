"""How wide the heads' MAP pooling is (shared by heads.py and hyena.py)."""

from __future__ import annotations


def map_heads(embed_dim: int, n_heads: int) -> int:
    """Attention heads of a head's MAP pooling over an encoder with `n_heads` heads of width `embed_dim`.

    Twice the encoder's heads, as the Voltron reference sizes its MAP extractor (`MAPExtractor.for_encoder`),
    when `embed_dim` splits evenly into that many; otherwise (e.g. a baseline whose width is not a multiple
    of 2 x its nominal heads) the encoder's own head count."""
    return n_heads if embed_dim % (2 * n_heads) else 2 * n_heads


__all__ = ["map_heads"]
