"""Visual (and video-language) encoders: Voltron V-Cond / V-Dual / V-Gen, the R-MVP and R-R3M baselines,
a frozen-LM wrapper, MAP pooling, and a registry with `load()` for our and the reference's checkpoints.

    model, preprocess = load("v-cond", language_model="path/to/distilbert")   # local checkpoint, no downloads
    feats = model(preprocess(images), "peel the carrot", mode="multimodal")   # [B, 196 + 20, 384]
    loss, metrics = model({"images": x, "lang_ids": ids, "lang_mask": mask})   # training

This package knows nothing of datasets or files beyond checkpoints (see robolearn.pretrain for data).
"""

from robolearn.encoders.base import Encoder
from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.files import CheckpointError, CheckpointMismatchError, CheckpointNotFoundError
from robolearn.encoders.language import LanguageModel, LanguageModelError, null_language
from robolearn.encoders.loading import load, load_checkpoint, save
from robolearn.encoders.map import MAPExtractor
from robolearn.encoders.mvp import MVP
from robolearn.encoders.pretrained_lm import default_language_model, packaged_language_model
from robolearn.encoders.r3m import R3M
from robolearn.encoders.registry import available_models, build, config_for, preprocess_for
from robolearn.encoders.vcond import VCond
from robolearn.encoders.vdual import VDual
from robolearn.encoders.vgen import VGen

__all__ = [
    "MVP",
    "R3M",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "Encoder",
    "EncoderConfig",
    "LanguageModel",
    "LanguageModelError",
    "MAPExtractor",
    "VCond",
    "VDual",
    "VGen",
    "available_models",
    "build",
    "config_for",
    "default_language_model",
    "load",
    "load_checkpoint",
    "null_language",
    "packaged_language_model",
    "preprocess_for",
    "save",
]
