"""Build a small language model + tokenizer folder offline (tests, benchmarks, air-gapped machines).

`write_language_model(dir, ...)` saves a DistilBERT-architecture model with random weights and a synthetic
WordPiece vocabulary that keeps BERT's special-token ids ([PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
[MASK]=103), so `AutoModel.from_pretrained(dir)` / `AutoTokenizer.from_pretrained(dir)` load it exactly
like a hub model. Real words get arbitrary ids: fine for shapes, speed and training tests, not for loading
published checkpoints (use the real `distilbert-base-uncased` folder for those).
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
COMMON_WORDS = (
    "a the to of and in on from into onto off up down left right open close push pull put take "
    "move pick place lift drop turn press stack drawer door cabinet button cup bowl block cube "
    "bin shelf can bottle box something nothing it this that with over under behind front "
    "pushing pulling putting taking moving picking lifting dropping turning opening closing "
    "red green blue table counter towards away slightly"
).split()


def _vocab(size: int) -> dict[str, int]:
    vocab = dict(SPECIALS)
    filler = (f"[unused{i}]" for i in range(size))
    words = iter(COMMON_WORDS)
    for idx in range(size):
        if idx in SPECIALS.values():
            continue
        token = next(words, None) if idx > 103 else None
        vocab[token or next(filler)] = idx
    return vocab


def write_language_model(
    path: str | Path,
    vocab_size: int = 30522,
    dim: int = 768,
    layers: int = 6,
    heads: int = 12,
    hidden: int | None = None,
    seed: int = 0,
) -> Path:
    """Save a random-weight DistilBERT-architecture model + tokenizer to `path`; returns `path`.

    The defaults give distilbert-base-uncased's architecture (768-d, 6 layers, 30522 tokens); tests use
    e.g. dim=32, layers=1, heads=2, vocab_size=1000.
    """
    import torch
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    if vocab_size <= max(SPECIALS.values()):
        raise ValueError(f"vocab_size must exceed {max(SPECIALS.values())} (BERT's special-token ids)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=vocab_size,
        dim=dim,
        n_layers=layers,
        n_heads=heads,
        hidden_dim=hidden or 4 * dim,
        max_position_embeddings=512,
    )
    DistilBertModel(config).save_pretrained(path)
    DistilBertTokenizerFast(vocab=_vocab(vocab_size), do_lower_case=True).save_pretrained(path)
    return path
