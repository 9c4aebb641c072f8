"""``config.model.name`` -> model. Every model maps ``(batch, samples)`` 16-kHz audio to logits.

``build_model(config.model, n_tags, sample_rate=16000, rngs=nnx.Rngs(params=0, dropout=1))``. The
model keeps ``rngs`` for its dropout, so the dropout RNG state is part of ``nnx.state(model)``.
"""
from __future__ import annotations

from typing import Callable

from flax import nnx

from jaxtag.core import choices
from jaxtag.models import baselines, won
from jaxtag.models.backend import Backend
from jaxtag.models.layers import Hyper
from jaxtag.models.logmel import LogMelConfig
from jaxtag.models.musicnn import Musicnn, MusicnnVGG
from jaxtag.models.spectrogram import SpectrogramFrontend
from jaxtag.models.tagger import Tagger
from jaxtag.models.waveform import WaveformFrontend


def _backend(model_cfg, hp: Hyper, in_channels: int, n_tags: int, rngs: nnx.Rngs) -> Backend:
  return Backend(hp, in_channels, n_tags, filters=int(model_cfg.backend_filters),
                 units=int(model_cfg.backend_units), dropout=float(model_cfg.dropout),
                 scalar_bn_quirk=bool(model_cfg.scalar_bn_quirk), rngs=rngs)


def _waveform(model_cfg, n_tags, sample_rate, hp, rngs):
  front = WaveformFrontend(hp, width=int(model_cfg.waveform_width), layers=int(model_cfg.waveform_layers),
                           scale=float(model_cfg.get("waveform_scale", 1.0)), rngs=rngs)   # older runs: no field
  return Tagger(front, _backend(model_cfg, hp, front.out_channels, n_tags, rngs))


def _spectrogram(model_cfg, n_tags, sample_rate, hp, rngs):
  front = SpectrogramFrontend(hp, _mel(model_cfg, sample_rate), k=int(model_cfg.spectrogram_k), rngs=rngs)
  return Tagger(front, _backend(model_cfg, hp, front.out_channels, n_tags, rngs))


def _musicnn(model_cfg, n_tags, sample_rate, hp, rngs):
  """Mid-end filters and dense units come from ``backend_filters``/``backend_units``: 64/200 (``small``)
  is MTT/MSD_musicnn, 512/500 is MSD_musicnn_big; ``width`` scales the front-end (1 = published)."""
  return Musicnn(hp, _mel(model_cfg, sample_rate), n_tags,
                 midend_filters=int(model_cfg.backend_filters), units=int(model_cfg.backend_units),
                 dropout=float(model_cfg.dropout), width=float(model_cfg.width), rngs=rngs)


def _musicnn_vgg(model_cfg, n_tags, sample_rate, hp, rngs):
  """128 filters at ``width=1`` (MTT/MSD_vgg)."""
  return MusicnnVGG(hp, _mel(model_cfg, sample_rate), n_tags,
                    filters=max(1, round(128 * float(model_cfg.width))), rngs=rngs)


def _mel(model_cfg, sample_rate) -> LogMelConfig:
  return LogMelConfig.from_config(model_cfg.logmel, sample_rate)


_BUILDERS: dict[str, Callable] = {
    "waveform": _waveform,
    "spectrogram": _spectrogram,
    "musicnn": _musicnn,
    "musicnn_vgg": _musicnn_vgg,
    "dieleman": lambda m, n, sr, hp, rngs: baselines.Dieleman(hp, n, sample_rate=sr, width=m.width, rngs=rngs),
    "samplecnn": lambda m, n, sr, hp, rngs: baselines.SampleCNN(hp, n, width=m.width, dropout=m.dropout,
                                                                rngs=rngs),
    "samplecnn_multi": lambda m, n, sr, hp, rngs: baselines.SampleCNNMulti(hp, n, width=m.width,
                                                                          dropout=m.dropout, rngs=rngs),
    "timbre_cnn": lambda m, n, sr, hp, rngs: baselines.TimbreCNN(hp, _mel(m, sr), n, width=m.width, rngs=rngs),
    "vgg": lambda m, n, sr, hp, rngs: baselines.VGG(hp, _mel(m, sr), n, width=m.width, dropout=m.dropout,
                                                    rngs=rngs),
    "crnn": lambda m, n, sr, hp, rngs: baselines.CRNN(hp, _mel(m, sr), n, width=m.width, dropout=m.dropout,
                                                      rngs=rngs),
    # Won et al. 2020 (jaxtag/models/won.py; configs/won.py takes the authors' model_type names)
    "short_chunk_cnn": lambda m, n, sr, hp, rngs: won.ShortChunkCNN(hp, _mel(m, sr), n, width=m.width,
                                                                    dropout=m.dropout, rngs=rngs),
    "short_chunk_resnet": lambda m, n, sr, hp, rngs: won.ShortChunkResNet(hp, _mel(m, sr), n, width=m.width,
                                                                          dropout=m.dropout, rngs=rngs),
    "harmonic_cnn": lambda m, n, sr, hp, rngs: won.HarmonicCNN(hp, _mel(m, sr), n, width=m.width,
                                                               dropout=m.dropout, rngs=rngs),
    "samplecnn_se": lambda m, n, sr, hp, rngs: won.SampleCNNSE(hp, n, width=m.width, dropout=m.dropout, rngs=rngs),
    "cnnsa": lambda m, n, sr, hp, rngs: won.CNNSA(hp, _mel(m, sr), n, width=m.width, dropout=m.dropout, rngs=rngs),
}
MODELS = tuple(_BUILDERS)   # the config schema's model.name choices are choices.MODELS: a test keeps them equal


def check_name(name: str) -> None:
  """Unknown model names raise ``choices.ConfigError`` listing the valid ones (a fresh config is checked at start
  by the config schema; this guards models built from a stored run's config)."""
  choices.check("model.name", name, MODELS)


def build_model(model_cfg, n_tags: int, *, sample_rate: int, rngs: nnx.Rngs) -> nnx.Module:
  """Builds ``model_cfg.name`` with its hyper-parameters; unknown names raise and list the valid ones."""
  check_name(model_cfg.name)
  return _BUILDERS[model_cfg.name](model_cfg, int(n_tags), int(sample_rate), Hyper.from_config(model_cfg), rngs)


def new_model(config, n_tags: int, seed: int = 0):
  """The config's model with fresh parameters: the one place that seeds a model's RNG streams."""
  return build_model(config.model, n_tags, sample_rate=config.data.sample_rate,
                              rngs=nnx.Rngs(params=seed, dropout=seed + 1))


def abstract_model(config, n_tags: int):
  """The model's structure without any allocation (``nnx.eval_shape``): for parameter tables and graphdefs."""
  return nnx.eval_shape(lambda: new_model(config, n_tags))
