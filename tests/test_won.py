"""Won et al. 2020's models (jaxtag/models/won.py, configs/won.py): parameter counts equal to the authors'
PyTorch code, counted here by hand layer by layer; shapes; the harmonic filterbank and torchaudio's log-mel;
one jitted training step. Everything but the step and the filterbank's gradient is built abstractly."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import won as won_config
from jaxtag.models import won
from jaxtag.models.layers import count_params
from jaxtag.models.registry import build_model
from jaxtag.training import step as step_lib
from jaxtag.training import trainable
from jaxtag.models.logmel import LogMelConfig, logmel, mel_filterbank

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


# ---- the authors' parameter counts, as PyTorch counts them (minzwon/sota-music-tagging-models, training/) -------
# nn.Conv1d/2d: weight (in x out x kernel) + bias; nn.BatchNorm: weight + bias (running mean/var are buffers);
# nn.Linear: weight + bias; BertLayerNorm: weight + bias. Pooling, ReLU, dropout and the CNNSA's [CLS] vector
# (a plain tensor, not an nn.Parameter) have none.

def conv(cin, cout, kernel_area):
  return cin * cout * kernel_area + cout


def bn(c):
  return 2 * c


def linear(i, o):
  return i * o + o


def conv_1d(i, o, k):                 # modules.Conv_1d: conv, BN
  return conv(i, o, k) + bn(o)


def conv_2d(i, o):                    # modules.Conv_2d: 3x3 conv, BN
  return conv(i, o, 9) + bn(o)


def res_2d(i, o, stride):             # modules.Res_2d: conv_1/bn_1, conv_2/bn_2, conv_3/bn_3 when stride != 1 or i != o
  return conv(i, o, 9) + bn(o) + conv(o, o, 9) + bn(o) + (conv(i, o, 9) + bn(o) if stride != 1 or i != o else 0)


def res_2d_mp(i, o):                  # modules.Res_2d_mp: conv_1/bn_1, conv_2/bn_2 (identity shortcut)
  return conv(i, o, 9) + bn(o) + conv(o, o, 9) + bn(o)


def res_se_1d(i, o, k, stride):       # modules.ResSE_1d: two convs + BNs, SE dense1/dense2, conv_3/bn_3 if projecting
  return (conv(i, o, k) + bn(o) + conv(o, o, k) + bn(o) + 2 * linear(o, o)
          + (conv(i, o, k) + bn(o) if stride != 1 or i != o else 0))


def dense_head(c, n):                 # dense1, bn (BatchNorm1d), dense2
  return linear(c, c) + bn(c) + linear(c, n)


def bert_layer(h, inter):             # attention_modules.BertLayer: query/key/value, output dense + LayerNorm,
  return 4 * linear(h, h) + bn(h) + linear(h, inter) + linear(inter, h) + bn(h)   # intermediate, output + LayerNorm


SPEC_BN = bn(1)                       # BatchNorm2d(1) on the dB mel spectrogram
N = 50
AUTHORS = {   # model.py, per class, with its defaults (n_channels=128, n_class=50)
    "short": SPEC_BN + conv_2d(1, 128) + conv_2d(128, 128) + conv_2d(128, 256) + 3 * conv_2d(256, 256)
             + conv_2d(256, 512) + dense_head(512, N),
    "short_res": SPEC_BN + res_2d(1, 128, 2) + res_2d(128, 128, 2) + res_2d(128, 256, 2) + 3 * res_2d(256, 256, 2)
                 + res_2d(256, 512, 2) + dense_head(512, N),
    "hcnn": 1 + bn(6)                 # HarmonicSTFT.bw_Q (learn_bw='only_Q'), hstft_bn over the 6 harmonics
            + conv_2d(6, 128) + 3 * res_2d_mp(128, 128) + conv_2d(128, 256) + 2 * res_2d_mp(256, 256)
            + dense_head(256, N),
    "se": res_se_1d(1, 128, 3, 3) + 2 * res_se_1d(128, 128, 3, 1) + res_se_1d(128, 256, 3, 1)
          + 5 * res_se_1d(256, 256, 3, 1) + res_se_1d(256, 512, 3, 1) + res_se_1d(512, 512, 1, 1) + dense_head(512, N),
    "attention": SPEC_BN + res_2d(1, 128, 2) + res_2d(128, 128, 2) + res_2d(128, 256, 2)
                 + 4 * res_2d(256, 256, (2, 1))            # stride (2, 1) != 1: projection shortcuts
                 + 2 * bert_layer(256, 1024) + linear(256, 256) + linear(256, N),   # encoder, BertPooler, dense
    "sample": conv_1d(1, 128, 3) + 2 * conv_1d(128, 128, 3) + conv_1d(128, 256, 3) + 5 * conv_1d(256, 256, 3)
              + conv_1d(256, 512, 3) + conv_1d(512, 512, 1) + linear(512, N),
}
COUNTS = {"short": 3_687_348, "short_res": 12_104_244, "hcnn": 3_631_551, "se": 6_951_858,
          "attention": 10_521_652, "sample": 1_869_874}
INPUT_SAMPLES = {"short": 59_049, "short_res": 59_049, "hcnn": 80_000, "se": 59_049, "attention": 240_000,
                 "sample": 59_049, "fcn": 464_000, "crnn": 464_000, "musicnn": 48_000}


def abstract(model_cfg, n_tags=N):
  return nnx.eval_shape(lambda: build_model(model_cfg, n_tags, sample_rate=16000, rngs=nnx.Rngs(0)))


def shapes(model, samples, batch=2):
  graphdef, state = nnx.split(model)
  x = jax.ShapeDtypeStruct((batch, samples), jnp.float32)
  logits = jax.eval_shape(lambda s, w: nnx.merge(graphdef, s)(w, train=True), state, x)
  emb = jax.eval_shape(lambda s, w: nnx.merge(graphdef, s).embed(w, train=False), state, x)
  return logits, emb


@pytest.mark.parametrize("model_type", list(COUNTS))
def test_parameter_counts_equal_the_authors(model_type):
  assert AUTHORS[model_type] == COUNTS[model_type]
  config = won_config.get_config(model_type)
  model = abstract(config.model)
  assert count_params(model) == COUNTS[model_type]
  logits, emb = shapes(model, INPUT_SAMPLES[model_type])
  assert logits.shape == (2, N) and logits.dtype == jnp.float32 and emb.ndim == 2


@pytest.mark.parametrize("model_type", list(won_config.MODEL_TYPES))
def test_configs_carry_the_authors_input_and_front_end(model_type):
  name, samples, mels = won_config.MODEL_TYPES[model_type]
  c = won_config.get_config(model_type)
  assert c.model.name == name and round(c.data.chunk_seconds * c.data.sample_rate) == INPUT_SAMPLES[model_type]
  assert (c.model.bn_epsilon, c.model.bn_momentum, c.train.global_batch_size, c.train.learning_rate) == \
      (1e-5, 0.9, 16, 1e-4)
  if mels:
    lm = c.model.logmel
    assert (lm.n_mels, lm.n_fft, lm.hop, lm.fmin, lm.fmax) == (mels, 512, 256, 0.0, 8000.0)
    assert lm.style == ("torchaudio" if model_type in won_config.NEW_MODELS else "librosa")
  smoke = won_config.get_config(f"{model_type},smoke,steps=7")
  assert smoke.data.dataset == "generated" and smoke.train.steps == 7 and smoke.model.width == 0.25
  assert round(smoke.data.chunk_seconds * 16000) == min(INPUT_SAMPLES[model_type], 80_000)


@pytest.mark.parametrize("model_type", won_config.NEW_MODELS)
def test_smoke_width_shapes_and_naming_contract(model_type):
  """At the smoke width the models keep their shapes (3 s, 15 s); the registry's contract holds:
  ``out`` is the head, ``dense``/``bn_dense`` the dense block, everything else the backbone."""
  config = won_config.get_config(f"{model_type},smoke")
  model = abstract(config.model, 8)
  for samples in (48_000, 240_000):
    logits, emb = shapes(model, samples)
    assert logits.shape == (2, 8) and emb.shape[0] == 2
  _, params, _ = step_lib.split_model(model)
  labels = trainable.labels(params, "top")
  paths = {tuple(str(getattr(k, "key", k)) for k in p): v
           for p, v in jax.tree_util.tree_flatten_with_path(labels)[0]}
  assert {v for p, v in paths.items() if p[0] == "out"} == {"head"}
  assert {v for p, v in paths.items() if p[0] in ("dense", "bn_dense")} == {"backbone"}
  assert {v for p, v in paths.items() if p[0] not in ("out", "dense", "bn_dense")} == {"frozen"}


def test_config_refuses_two_model_types_and_model_override():
  with pytest.raises(ValueError, match="one model type"):
    won_config.get_config("short,hcnn")
  with pytest.raises(ValueError, match="model types"):
    won_config.get_config("short,model=vgg")
  with pytest.raises(ValueError, match="unknown config argument"):
    won_config.get_config("shortres")


def test_harmonic_centres_and_filterbank():
  """6 harmonics x 128 bands, 2 per semitone from C1 (32.70 Hz) to MIDI 87.5; each filter is the triangle
  ``max(0, 1 - 2 |f - f0| / bw)`` with ``bw = (0.1079 f0 + 24.7) / Q``."""
  f0 = won.harmonic_centres(16000, 6, 2)
  assert f0.shape == (768,)
  np.testing.assert_allclose(f0[:128], 440.0 * 2.0 ** ((np.arange(128) / 2 + 24 - 69) / 12), rtol=1e-6)
  np.testing.assert_allclose(f0.reshape(6, 128), np.arange(1, 7)[:, None] * f0[None, :128], rtol=1e-6)
  bank = won.HarmonicFilterbank(LogMelConfig(n_mels=128, style="torchaudio"))
  assert count_params(bank) == 1 and float(bank.q[...][0]) == 1.0
  bins = np.linspace(0, 8000, 257)[:, None]
  bw = 0.1079 * f0[None].astype(np.float64) + 24.7
  expected = np.maximum(0.0, 1.0 - 2.0 * np.abs(bins - f0[None]) / bw)
  np.testing.assert_allclose(np.asarray(bank.filterbank()), expected, atol=2e-5)   # float32 slopes


def test_harmonic_spectrogram_is_db_of_the_filtered_power_and_q_learns():
  librosa = pytest.importorskip("librosa")
  y = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 8000)).astype(np.float32)
  bank = won.HarmonicFilterbank(LogMelConfig(n_mels=128, style="torchaudio"))
  graphdef, q, rest = nnx.split(bank, nnx.Param, ...)
  run = jax.jit(lambda q, y: nnx.merge(graphdef, q, rest)(y))
  got = np.asarray(run(q, jnp.asarray(y)))                               # (1, frames, 128, 6)
  power = np.abs(librosa.stft(y[0], n_fft=512, hop_length=256, center=True, pad_mode="reflect")) ** 2
  ref = 10 * np.log10(np.maximum(power.T @ np.asarray(bank.filterbank(), np.float64), 1e-10))   # (frames, 768)
  assert got.shape == (1, 32, 128, 6)
  np.testing.assert_allclose(got[0], ref.reshape(32, 6, 128).transpose(0, 2, 1), atol=2e-3)
  grad = jax.jit(jax.grad(lambda q: run(q, jnp.asarray(y)).mean()))(q)
  g = jax.tree.leaves(grad)[0]
  assert np.isfinite(g).all() and np.abs(g).min() > 0


def test_torchaudio_style_log_mel_matches_librosa_htk_power_to_db():
  """torchaudio's MelSpectrogram defaults = librosa with htk=True, norm=None, reflect centring; then
  AmplitudeToDB = 10 log10(max(x, 1e-10))."""
  librosa = pytest.importorskip("librosa")
  ref_fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=128, fmin=0.0, fmax=8000.0, htk=True, norm=None).T
  np.testing.assert_allclose(mel_filterbank(16000, 512, 128, 0.0, 8000.0, "torchaudio"), ref_fb, rtol=1e-5, atol=1e-7)
  y = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 12345)).astype(np.float32)
  got = np.asarray(logmel(jnp.asarray(y), LogMelConfig(n_mels=128, style="torchaudio")))
  for i in range(2):
    mel = librosa.feature.melspectrogram(y=y[i], sr=16000, n_fft=512, hop_length=256, n_mels=128, fmin=0.0,
                                         fmax=8000.0, htk=True, norm=None, center=True, pad_mode="reflect")
    np.testing.assert_allclose(got[i], 10 * np.log10(np.maximum(mel.T, 1e-10)), atol=2e-3)


def test_attention_model_trains_one_jitted_step():
  """CNNSA at a tiny width through ``jaxtag.step.train_step`` (Adam, L2, BN, dropout in the encoder): the loss
  is finite and every parameter, residual trunk and encoder alike, moves."""
  config = won_config.get_config("attention,smoke")
  config.model.width = 0.125                                   # 16/32 channels, 8 heads of 4
  model = build_model(config.model, 8, sample_rate=16000, rngs=nnx.Rngs(params=0, dropout=1))
  graphdef, params, rest = step_lib.split_model(model)
  tx = step_lib.optimizer()
  state = step_lib.init_state(params, rest, tx)
  rng = np.random.default_rng(0)
  batch = {"audio": jnp.asarray(rng.uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)),
           "targets": jnp.asarray(rng.integers(0, 2, (2, 8)).astype(np.float32))}
  step = jax.jit(functools.partial(step_lib.train_step, graphdef=graphdef, tx=tx, loss_kind="bce",
                                   l2=float(config.train.l2)), compiler_options=FAST_COMPILE)
  new, metrics = step(state, batch, jnp.float32(1e-3))
  assert np.isfinite(float(metrics["loss"])) and int(new["nan_step"]) == -1 and int(new["step"]) == 1
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), params, new["params"])
  assert all(jax.tree.leaves(moved)), [jax.tree_util.keystr(p) for p, m in
                                       jax.tree_util.tree_flatten_with_path(moved)[0] if not m]
  assert won.cls_token(32).shape == (1, 32)
  np.random.seed(0)
  np.testing.assert_array_equal(won.cls_token(256), np.random.random((1, 256)).astype(np.float32))
