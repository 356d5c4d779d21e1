"""`Policy`: backbone + head + normalisation, and `PolicyRunner` for closed-loop control.

    policy = build_policy(PolicyConfig(encoder="v-cond-tiny", cameras=["exterior_1"], head=ChunkHeadConfig(chunk=8)))
    runner = policy.runner()          # temporal ensembling state, one slot per parallel env
    action = runner.act(obs)          # obs: env dict (images/proprio/language), single or batched

Actions and proprio are normalised with the training data's mean/std (stored in the policy's buffers), so
a checkpoint is self-contained.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from robolearn.policies.backbones import Backbone, build_backbone
from robolearn.policies.config import PolicyConfig
from robolearn.policies.heads import build_head


class Policy(nn.Module):
    def __init__(self, config: PolicyConfig, encoder_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.backbone: Backbone = build_backbone(config, encoder_config)
        self.backbone.set_trainable(config)
        self.head = build_head(config, self.backbone.embed_dim, self.backbone.n_heads)
        for name, dim in (("action", config.action_dim), ("proprio", config.proprio_dim)):
            self.register_buffer(f"{name}_shift", torch.zeros(dim))
            self.register_buffer(f"{name}_scale", torch.ones(dim))

    # ---- normalisation ------------------------------------------------------------------------------
    def set_normalization(self, action: tuple[np.ndarray, np.ndarray], proprio: tuple[np.ndarray, np.ndarray]) -> None:
        for name, (shift, scale) in (("action", action), ("proprio", proprio)):
            getattr(self, f"{name}_shift").copy_(torch.as_tensor(np.asarray(shift), dtype=torch.float32))
            getattr(self, f"{name}_scale").copy_(torch.as_tensor(np.asarray(scale), dtype=torch.float32))

    def normalize_proprio(self, proprio: torch.Tensor) -> torch.Tensor:
        return (proprio - self.proprio_shift) / self.proprio_scale

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return action * self.action_scale + self.action_shift

    # ---- forward ------------------------------------------------------------------------------------
    def encode(self, images: dict[str, torch.Tensor], language: list[str] | None = None) -> list[torch.Tensor]:
        """uint8 images {camera: [B, 3, H, W]} -> one token tensor [B, N, D] per camera (config order); a history
        {camera: [B, T, 3, H, W]} -> [B, T, N, D] (every frame encoded alone)."""
        missing = [c for c in self.config.cameras if c not in images]
        if missing:
            raise KeyError(f"policy needs camera(s) {missing}; got {sorted(images)}")
        first = images[self.config.cameras[0]]
        if first.ndim == 5:
            b, t = first.shape[:2]
            lang = None if language is None else [text for text in language for _ in range(t)]
            flat = self.encode({c: images[c].flatten(0, 1) for c in self.config.cameras}, lang)
            return [x.view(b, t, *x.shape[1:]) for x in flat]
        return [self.backbone(self.backbone.preprocess(images[c]), language) for c in self.config.cameras]

    def forward_tokens(self, tokens: list[torch.Tensor], proprio: torch.Tensor | None) -> torch.Tensor:
        """Cached or fresh tokens + normalised proprio -> normalised actions [B, H, A]."""
        return self.head(tokens, proprio if self.config.proprio_dim else None)

    def forward(
        self, images: dict[str, torch.Tensor], proprio: torch.Tensor, language: list[str] | None = None
    ) -> torch.Tensor:
        return self.forward_tokens(self.encode(images, language), proprio)

    @torch.no_grad()
    def predict(
        self, images: dict[str, torch.Tensor], proprio: torch.Tensor, language: list[str] | None = None
    ) -> torch.Tensor:
        """Raw proprio, uint8 images -> unnormalised action chunks [B, H, A]."""
        self.eval()
        return self.unnormalize_action(self(images, self.normalize_proprio(proprio.float()), language))

    def runner(self, num_envs: int = 1) -> PolicyRunner:
        return PolicyRunner(self, num_envs)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


class PolicyRunner:
    """Closed-loop control with temporal ensembling of overlapping action chunks (ACT): the action at step t
    averages every chunk predicted at t' in (t-H, t] at offset t-t', weighted exp(-decay * age) with the
    oldest prediction weighted most, as in ACT. H = 1 is plain per-step control.

    A head with a history (`config.history` = k > 1, the hyena head) gets the tokens and proprio of the last k
    steps of each env's episode, the episode's first frame repeated while fewer exist (as the training loader
    pads); each frame is encoded once, when it arrives."""

    def __init__(self, policy: Policy, num_envs: int = 1) -> None:
        self.policy, self.num_envs = policy, num_envs
        self.device = next(policy.parameters()).device
        self.reset()

    def reset(self, env: int | None = None) -> None:
        """Forget the chunks (and frame history) of every env (or of one env, at its episode boundary)."""
        if env is None:
            self._chunks: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(self.num_envs)]
            self._t = [0] * self.num_envs
            self._frames: list[list[tuple[list[torch.Tensor], torch.Tensor]]] = [[] for _ in range(self.num_envs)]
        else:
            self._chunks[env], self._t[env], self._frames[env] = [], 0, []

    @torch.no_grad()
    def _predict_with_history(self, envs: list[int], imgs, proprio: torch.Tensor, language: list[str]) -> np.ndarray:
        """Encode the new frames, append them to each env's history, predict from the last k frames."""
        policy, k = self.policy, self.policy.config.history
        policy.eval()
        tokens = policy.encode(imgs, language)
        pn = policy.normalize_proprio(proprio.float())
        seq_tokens, seq_proprio = [], []
        for j, e in enumerate(envs):
            frames = self._frames[e]
            frames.append(([t[j] for t in tokens], pn[j]))
            del frames[:-k]
            window = [frames[0]] * (k - len(frames)) + frames
            seq_tokens.append([torch.stack([f[0][c] for f in window]) for c in range(len(tokens))])
            seq_proprio.append(torch.stack([f[1] for f in window]))
        batch = [torch.stack([s[c] for s in seq_tokens]) for c in range(len(tokens))]
        out = policy.forward_tokens(batch, torch.stack(seq_proprio))
        return policy.unnormalize_action(out).cpu().numpy()

    def _tensors(self, obs_list: list[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]:
        """Single-env observations -> batched uint8 images [B, 3, H, W], proprio [B, P], B instructions."""
        cams, cfg = self.policy.config.cameras, self.policy.config
        for obs in obs_list:
            images = obs.get("images", {})
            missing = [c for c in cams if c not in images]
            if missing:
                raise KeyError(
                    f"observation lacks camera(s) {missing} the policy was trained on; it has {sorted(images)}"
                )
        imgs = {
            c: torch.from_numpy(np.stack([np.asarray(o["images"][c]) for o in obs_list]))
            .permute(0, 3, 1, 2)
            .to(self.device)
            for c in cams
        }
        proprio = np.stack([np.asarray(o["proprio"], dtype=np.float32) for o in obs_list])
        if proprio.shape[-1] != cfg.proprio_dim:
            raise ValueError(
                f"proprio has {proprio.shape[-1]} values; the policy expects {cfg.proprio_dim} ({cfg.proprio_keys})"
            )
        return imgs, torch.from_numpy(proprio).to(self.device), [str(o.get("language", "")) for o in obs_list]

    def act_envs(self, envs: list[int], obs_list: list[dict[str, Any]]) -> list[np.ndarray]:
        """Act for a subset of the envs (each with its own ensembling state) in one batched forward."""
        if any(not 0 <= e < self.num_envs for e in envs):
            raise ValueError(f"env indices {envs} out of range for a runner of {self.num_envs} env(s)")
        imgs, proprio, language = self._tensors(obs_list)
        if self.policy.config.history > 1:
            chunks = self._predict_with_history(envs, imgs, proprio, language)
        else:
            chunks = self.policy.predict(imgs, proprio, language).cpu().numpy()  # [B, H, A]
        return [self._ensemble(e, chunks[j]) for j, e in enumerate(envs)]

    def act_env(self, env: int, obs: dict[str, Any]) -> np.ndarray:
        return self.act_envs([env], [obs])[0]

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """One env's observation -> action [A]; a batched (vector env) observation -> [num_envs, A]."""
        first = np.asarray(obs["images"][self.policy.config.cameras[0]]) if obs.get("images") else None
        if first is not None and first.ndim == 4:
            n = first.shape[0]
            lang = obs.get("language", "")
            langs = [lang] * n if isinstance(lang, str) else list(lang)
            obs_list = [
                {
                    "images": {c: v[i] for c, v in obs["images"].items()},
                    "proprio": obs["proprio"][i],
                    "language": langs[i],
                }
                for i in range(n)
            ]
            return np.stack(self.act_envs(list(range(n)), obs_list))
        return self.act_env(0, obs)

    def _ensemble(self, env: int, chunk: np.ndarray) -> np.ndarray:
        t, h = self._t[env], chunk.shape[0]
        live = [(t0, c) for t0, c in self._chunks[env] if t - t0 < h] + [(t, chunk)]
        self._chunks[env], self._t[env] = live, t + 1
        if h == 1:
            return chunk[0].astype(np.float32)
        preds = np.stack([c[t - t0] for t0, c in live])  # oldest first
        w = np.exp(-self.policy.config.head.ensemble_decay * np.arange(len(live)))
        return ((w[:, None] * preds).sum(0) / w.sum()).astype(np.float32)


def build_policy(config: PolicyConfig, encoder_config: dict[str, Any] | None = None) -> Policy:
    return Policy(config, encoder_config)
