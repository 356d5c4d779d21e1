"""V-Gen: two frames; each example either *conditions* on its caption (encoder sees it) or *generates* it
(encoder sees the [CLS]-only null language, a prefix-LM decoder predicts the caption).

Decoder sequence = [2 x N reconstructed patch tokens ; L caption tokens], the caption tokens embedded with the
frozen LM's embedding layer only (non-contextual: no bidirectional leakage) and projected to the decoder
width. Attention pattern (prefix LM): patches attend to all patches and never to language; language attends to
all patches and causally to earlier language. Loss = mae_weight * mean(frame losses) + lm_weight * LM loss, the
LM loss averaged over each example's positions whose *input* token is real (mask[:, :-1], as the reference),
then weighted per example: sum(w * l) / (eps + sum(w)) with w = 1 for "generate" examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.encoders.base import metrics_of
from robolearn.encoders.language import null_language
from robolearn.encoders.layers import AttentionMask
from robolearn.encoders.voltron import VoltronMAE


def prefix_lm_allow(n_prefix: int, n_text: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[S, S] bool (True = may attend): causal over everything, full attention inside the first n_prefix."""
    s = n_prefix + n_text
    allow = torch.ones(s, s, dtype=torch.bool, device=device).tril()
    allow[:n_prefix, :n_prefix] = True
    return allow


class VGen(VoltronMAE):
    """Training batch: images [B, 2, 3, H, W], lang_ids / lang_mask [B, 20], and either `generate` [B] bool
    (True: generate the caption; drawn with probability gen_ratio when absent), or the reference's explicit
    form gen_ids / gen_mask [B, 20] + gen_weight [B] with lang_ids / lang_mask the conditioning language."""

    n_frames = 2

    def build_extra(self) -> None:
        c = self.config
        self.decoder_lang_proj = nn.Linear(c.language_dim, c.decoder_dim)
        self.token_head = nn.Linear(c.decoder_dim, c.vocab_size)

    # --- language routing ---------------------------------------------------------------------------------
    def split_language(
        self, batch: Mapping[str, Any], b: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (con_ids, con_mask, con_feats, gen_ids, gen_mask, gen_weight)."""
        ids, mask, feats = self.batch_language(batch, b, device, allow_dropout="gen_ids" not in batch)
        if "gen_ids" in batch:
            for key in ("gen_mask", "gen_weight"):
                if key not in batch:
                    raise KeyError(f"VGen batch has 'gen_ids' but no '{key}'")
            gen_ids, gen_mask = batch["gen_ids"].to(device), batch["gen_mask"].to(device)
            weight = batch["gen_weight"].to(device).float()
            if gen_ids.shape != ids.shape or gen_mask.shape != ids.shape or weight.shape != (b,):
                raise ValueError(
                    f"'gen_ids'/'gen_mask' must be {tuple(ids.shape)} and 'gen_weight' [{b}]; got "
                    f"{tuple(gen_ids.shape)}, {tuple(gen_mask.shape)}, {tuple(weight.shape)}"
                )
            return ids, mask, self.encode_language(ids, mask, feats), gen_ids, gen_mask, weight
        generate = batch.get("generate")
        if generate is None:
            generate = torch.rand(b, device=device) < self.config.gen_ratio
        generate = generate.to(device).bool().reshape(b)
        null_ids, null_mask = null_language(b, ids.shape[1], self.config.cls_token_id, device)
        g = generate[:, None]
        con_ids, con_mask = torch.where(g, null_ids, ids), torch.where(g, null_mask, mask)
        gen_ids, gen_mask = torch.where(g, ids, null_ids), torch.where(g, mask, null_mask)
        if feats is None:
            con_feats = self.language.encode(con_ids, con_mask)
        else:  # precomputed caption features: swap in the (cached) null-language features where generating
            null_feats = self.language.encode(null_ids[:1], null_mask[:1]).to(feats.dtype)
            con_feats = torch.where(generate[:, None, None], null_feats, feats)
        return con_ids, con_mask, con_feats, gen_ids, gen_mask, generate.float()

    # --- decoder ------------------------------------------------------------------------------------------
    def decode(
        self,
        encoded: torch.Tensor,
        restore_idx: torch.Tensor | None,
        gen_embeds: torch.Tensor,
        gen_mask: torch.Tensor,
        logits: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """encoded [B, 2, K, D] -> (pixels [B, 2, N, p*p*C], token logits [B, L, vocab]; with logits=False the
        decoder's text states [B, L, decoder_dim] instead)."""
        b, t = encoded.shape[:2]
        patches = self.decoder_tokens(encoded, restore_idx)
        text = self.decoder_lang_proj(gen_embeds.to(patches.dtype))
        n_img = patches.shape[1]
        valid = torch.cat([torch.ones(b, n_img, dtype=torch.bool, device=patches.device), gen_mask.bool()], 1)
        allow = prefix_lm_allow(n_img, text.shape[1], patches.device)[None, None]
        x = self.decoder(
            torch.cat([patches, text], dim=1),
            AttentionMask.from_padding(valid, self.config.voltron_compat, allow=allow),
        )
        pixels = self.pixel_head(x[:, :n_img]).reshape(b, t, self.config.n_patches, -1)
        return pixels, self.token_head(x[:, n_img:]) if logits else x[:, n_img:]

    @staticmethod
    def token_nll(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-example mean next-token cross-entropy over positions whose input token is real: [B]."""
        ce = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
        ce = ce.reshape(ids.shape[0], -1)
        m = mask[:, :-1].to(ce.dtype)
        return (ce * m).sum(-1) / m.sum(-1)

    def weighted_token_nll(
        self, text: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """`token_nll` of the decoder's text states [B, L, d], with the vocabulary head applied only where the
        loss counts: real input positions of examples with nonzero weight (0 for the others). The head over a
        30k-word vocabulary dominates a tiny V-Gen step; 'condition' examples (weight 0, half of a batch) and
        padding never reach it. Same loss and gradients as `token_nll` on the full logits."""
        count = mask[:, :-1].sum(-1).clamp(min=1)
        b_idx, pos = (mask[:, :-1].bool() & (weight != 0)[:, None]).nonzero(as_tuple=True)
        logits = self.token_head(text[b_idx, pos])  # [n, vocab]; n = 0 still gives the head a (zero) gradient
        ce = F.cross_entropy(logits.float(), ids[b_idx, pos + 1], reduction="none")
        total = torch.zeros(ids.shape[0], dtype=ce.dtype, device=ce.device).index_add(0, b_idx, ce)
        return total / count.to(ce.dtype)

    # --- training -----------------------------------------------------------------------------------------
    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        if "images" not in batch:
            raise KeyError(f"VGen batch needs 'images'; got keys {sorted(batch)}")
        c = self.config
        frames = self.frames(batch["images"])
        b, t = frames.shape[:2]
        patches = self.embed_patches(frames)
        visible, m = self.mask_patches(patches, batch)
        _, con_mask, con_feats, gen_ids, gen_mask, weight = self.split_language(batch, b, frames.device)
        encoded = self.encode(visible, con_feats, con_mask)
        k = visible.shape[2]
        gen_embeds = batch.get("gen_embeddings")
        if gen_embeds is None:
            gen_embeds = self.language.embed_tokens(gen_ids)
        pixels, text = self.decode(
            encoded[:, : t * k].reshape(b, t, k, -1), m.restore_idx, gen_embeds.to(frames.device), gen_mask, False
        )
        losses = self.frame_losses(pixels, frames, m.mask)
        rec = (losses[0] + losses[1]) / 2
        nll = self.weighted_token_nll(text, gen_ids, gen_mask, weight)
        lm = (nll * weight).sum() / (c.eps + weight.sum())
        loss = c.mae_weight * rec + c.lm_weight * lm
        return loss, metrics_of(
            mae_loss=rec, lm_loss=lm, mae_loss_0=losses[0], mae_loss_k=losses[1], gen_fraction=weight.mean()
        )

    # --- zero-shot intent scoring -------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, images: torch.Tensor, captions: Sequence[str] | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean token log-likelihood of each candidate caption given one (initial, current) frame pair.

        images [2, 3, H, W] or [1, 2, 3, H, W]; captions: k strings or (ids, mask) [k, L]. Returns [k]
        (higher = more likely). The encoder sees the null language; its output is shared by all captions."""
        frames = self.frames(images)
        if frames.shape[0] != 1:
            raise ValueError(f"score() takes one frame pair; got a batch of {frames.shape[0]}")
        device = frames.device
        if isinstance(captions, tuple) and len(captions) == 2 and isinstance(captions[0], torch.Tensor):
            ids, mask = captions[0].to(device), captions[1].to(device)
        else:
            ids, mask = self.language.tokenize(list(captions))
            ids, mask = ids.to(device), mask.to(device)
        null_ids, null_mask = null_language(1, self.config.max_lang_len, self.config.cls_token_id, device)
        encoded = self.encode(self.embed_patches(frames), self.language.encode(null_ids, null_mask), null_mask)
        n = self.config.n_patches
        encoded = encoded[:, : 2 * n].reshape(1, 2, n, -1).expand(len(ids), -1, -1, -1)
        _, logits = self.decode(encoded, None, self.language.embed_tokens(ids), mask)
        return -self.token_nll(logits, ids, mask)
