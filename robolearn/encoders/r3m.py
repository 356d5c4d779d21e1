"""R-R3M: R3M's objectives on a ViT-S trunk (mean-pooled LayerNorm/GELU ViT) or a torchvision ResNet-50 trunk
(fc = Identity, 2048-d, weights=None: nothing is downloaded).

Input: quintets [B, 5, 3, H, W] = (initial, i, j, k, final) in the 0-255 range (no normalisation).
Loss = tcn_weight * TCN + lang_reward_weight * reward + l1_weight * mean ||e||_1 + l2_weight * mean ||e||_2:
- TCN: InfoNCE on -L2 distance; positives (i, j) and (j, k), hard negative (i, k), n_negatives shuffled-batch
  negatives per anchor;
- language reward: an MLP (4 x reward_dim ReLU layers, sigmoid) on [s0 ; s_t ; mean-pooled LM features];
  positives (s0, final), (s0, j), (s0, k); in-context negatives (s0, s0), (s0, i), (s0, j); n_negatives
  shuffled-batch negatives each.
The LM features are mean-pooled over real tokens (voltron_compat: over all 20 positions, as the reference).
Random negatives use `torch.randperm` on the CPU generator in the reference's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robolearn.encoders.base import Encoder, Language, metrics_of
from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.layers import PatchEmbed, Transformer, init_weights
from robolearn.encoders.posembed import sincos_2d


def reward_mlp(in_dim: int, hidden: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, 1), nn.Sigmoid())


class R3M(Encoder):
    modes = ("visual",)

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        c = config
        if c.arch == "r-r3m-rn50":
            from torchvision.models import resnet50

            self.trunk = resnet50(weights=None)
            self.trunk.fc = nn.Identity()
            self.embed_dim = c.fc_dim
            self.reward_head = reward_mlp(2 * c.fc_dim + c.language_dim, c.reward_dim)  # default torch init
        else:
            self.patch_embed = PatchEmbed(c.patch_size, c.encoder_dim, c.in_channels)
            self.register_buffer("pe", sincos_2d(c.encoder_dim, c.grid)[None], persistent=False)
            self.encoder = Transformer(c.encoder_dim, c.encoder_depth, c.encoder_heads, c.mlp_ratio, "mae")
            self.reward_head = reward_mlp(2 * c.encoder_dim + c.language_dim, c.reward_dim)
            init_weights(self)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] (0-255) -> [N, D]."""
        if self.config.arch == "r-r3m-rn50":
            return self.trunk(images)
        return self.encoder(self.patch_embed(images) + self.pe).mean(dim=1)

    def pooled_language(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.config.voltron_compat:
            return feats.mean(dim=1)
        m = mask.to(feats.dtype)[..., None]
        return (feats * m).sum(1) / m.sum(1).clamp(min=1.0)

    def reward(self, s0: torch.Tensor, st: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        return self.reward_head(torch.cat([s0, st, lang], dim=-1)).squeeze(-1)

    def tcn_loss(self, si: torch.Tensor, sj: torch.Tensor, sk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps, b = self.config.eps, si.shape[0]

        def sim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return -torch.linalg.vector_norm(x - y, dim=-1)

        pos_ij, pos_jk, neg_ik = sim(si, sj).exp(), sim(sj, sk).exp(), sim(si, sk).exp()
        neg_i, neg_j = [], []
        for _ in range(self.config.n_negatives):
            pi, pj = torch.randperm(b), torch.randperm(b)
            neg_i.append(sim(si, si[pi.to(si.device)]))
            neg_j.append(sim(sj, sj[pj.to(sj.device)]))
        den_i = pos_ij + neg_ik + (torch.stack(neg_i, -1).exp().sum(-1) if neg_i else 0.0)
        den_j = pos_jk + neg_ik + (torch.stack(neg_j, -1).exp().sum(-1) if neg_j else 0.0)
        nce = (-torch.log(eps + pos_ij / (eps + den_i)) - torch.log(eps + pos_jk / (eps + den_j))) / 2
        acc = ((pos_ij > neg_ik).float().mean() + (pos_jk > neg_ik).float().mean()) / 2
        return nce.mean(), acc

    def reward_loss(
        self,
        lang: torch.Tensor,
        s0: torch.Tensor,
        si: torch.Tensor,
        sj: torch.Tensor,
        sk: torch.Tensor,
        sf: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps, b = self.config.eps, s0.shape[0]
        positives = [self.reward(s0, sf, lang), self.reward(s0, sj, lang), self.reward(s0, sk, lang)]
        negatives = [[self.reward(s0, s0, lang)], [self.reward(s0, si, lang)], [self.reward(s0, sj, lang)]]
        for _ in range(self.config.n_negatives):
            for slot, target in enumerate((sf, sj, sk)):
                p = torch.randperm(b).to(s0.device)
                negatives[slot].append(self.reward(s0[p], target[p], lang))
        nces, accs = [], []
        for pos, negs in zip(positives, negatives):
            pos_exp, neg_exp = pos.exp(), torch.stack(negs, -1).exp()
            nces.append(-torch.log(eps + pos_exp / (eps + pos_exp + neg_exp.sum(-1))))
            accs.append((neg_exp.max(dim=-1).values < pos_exp).float().mean())
        return (sum(nces) / 3).mean(), sum(accs) / 3

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """batch: images [B, 5, 3, H, W] in 0-255; lang_ids / lang_mask [B, 20] (or lang_features)."""
        if "images" not in batch:
            raise KeyError(f"R3M batch needs 'images'; got keys {sorted(batch)}")
        c = self.config
        images = self.check_images(batch["images"], 5, "quintets (initial, i, j, k, final) in 0-255")
        b = images.shape[0]
        emb = self.encode_images(images.flatten(0, 1))
        s0, si, sj, sk, sf = emb.reshape(b, 5, -1).unbind(1)
        l1 = torch.linalg.vector_norm(emb, ord=1, dim=-1).mean()
        l2 = torch.linalg.vector_norm(emb, ord=2, dim=-1).mean()
        tcn, tcn_acc = self.tcn_loss(si, sj, sk)
        ids, mask, feats = self.batch_language(batch, b, images.device)
        lang = self.pooled_language(self.encode_language(ids, mask, feats).to(emb.dtype), mask)
        rew, rew_acc = self.reward_loss(lang, s0, si, sj, sk, sf)
        loss = c.l1_weight * l1 + c.l2_weight * l2 + c.tcn_weight * tcn + c.lang_reward_weight * rew
        return loss, metrics_of(
            tcn_loss=tcn, reward_loss=rew, l1_loss=l1, l2_loss=l2, tcn_acc=tcn_acc, reward_acc=rew_acc
        )

    def extract(
        self, images: torch.Tensor, language: Language = None, mode: str | None = None, return_mask: bool = False
    ) -> Any:
        """[B, 3, H, W] (0-255) -> [B, 1, D] (the R3M embedding; language is not used)."""
        if language is not None:
            raise ValueError("R-R3M features are visual only; call it with images only")
        self.check_mode(mode)
        out = self.encode_images(self.check_images(images, None))[:, None]
        return (out, torch.ones(out.shape[:2], dtype=torch.long, device=out.device)) if return_mask else out
