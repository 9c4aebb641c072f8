"""musicnn / musicnn-VGG: sizes, weight import and parity with the authors' TF outputs (../shared/musicnn_ref)."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

from conftest import SHARED
from jaxtag.models.layers import count_params
from jaxtag.models.registry import build_model
from jaxtag.models.logmel import LogMelConfig, logmel
from jaxtag.models.musicnn_tags import MSD_LABELS, MTT_LABELS
from jaxtag.tools import import_musicnn

REF = os.path.join(SHARED, "musicnn_ref")
needs_ref = pytest.mark.skipif(not os.path.isdir(REF), reason="../shared/musicnn_ref not present")
MODELS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")


def _build(name):
  config = import_musicnn.musicnn_config(name)
  return config, build_model(config.model, 50, sample_rate=16000, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name,count", [("MTT_musicnn", 787_159), ("MSD_musicnn_big", 7_980_235),
                                        ("MTT_vgg", 605_748)])
def test_counts_match_the_checkpoints(name, count):
  config = import_musicnn.musicnn_config(name)
  model = nnx.eval_shape(lambda: build_model(config.model, 50, sample_rate=16000, rngs=nnx.Rngs(0)))
  assert count_params(model) == count


@needs_ref
def test_tag_lists_match_musicnn():
  with open(os.path.join(REF, "tags.json")) as f:
    tags = json.load(f)
  assert list(MTT_LABELS) == tags["MTT_LABELS"] and list(MSD_LABELS) == tags["MSD_LABELS"]


@pytest.fixture(scope="module")
def wav_patches():
  """musicnn's patching of the whole wav's log-mel, computed by jaxtag (not taken from the bundle)."""
  audio, sr = sf.read(os.path.join(REF, "synth_chords_clicks_16k.wav"), dtype="float32")
  assert sr == 16000
  lm = np.asarray(jax.jit(lambda a: logmel(a, LogMelConfig(musicnn_compat=True)))(audio[None]))[0]
  return audio, np.stack([lm[t:t + 187] for t in range(0, len(lm) - 187 + 1, 187)])


@needs_ref
@pytest.mark.parametrize("name", MODELS)
def test_parity_with_tf_outputs(name, wav_patches):
  _, model = _build(name)
  import_musicnn.load_into_model(os.path.join(REF, f"{name}_weights.npz"), model)
  ref = np.load(os.path.join(REF, f"{name}_synth_outputs.npz"))
  prob = np.asarray(jax.jit(lambda p: jax.nn.sigmoid(model.from_logmel(p)))(jnp.asarray(wav_patches[1])))
  err = np.abs(prob - ref["prob"]).max()
  print(f"{name}: max |prob - TF| = {err:.2e}")
  assert err <= 1e-4
  if "musicnn" in name:   # the penultimate features, too (values reach ~10)
    pen = np.asarray(jax.jit(lambda p: model.features(p, False))(jnp.asarray(wav_patches[1])))
    np.testing.assert_allclose(pen, ref["penultimate"], rtol=1e-4, atol=1e-3)


@needs_ref
def test_waveform_entry_point_gives_first_patch(wav_patches):
  """``model(wave)`` on the first 3 s equals musicnn's first patch (same frames, same padding)."""
  _, model = _build("MTT_musicnn")
  import_musicnn.load_into_model(os.path.join(REF, "MTT_musicnn_weights.npz"), model)
  ref = np.load(os.path.join(REF, "MTT_musicnn_synth_outputs.npz"))
  prob = jax.nn.sigmoid(model(jnp.asarray(wav_patches[0][None, :48000]), train=False))
  assert np.abs(np.asarray(prob)[0] - ref["prob"][0]).max() <= 1e-4


@needs_ref
def test_load_rejects_mismatched_weights():
  _, model = _build("MTT_vgg")
  weights = dict(np.load(os.path.join(REF, "MTT_vgg_weights.npz")))
  with pytest.raises(ValueError, match="missing"):
    import_musicnn.load_into_model({k: v for k, v in weights.items() if k != "dense/bias"}, model)
  weights["dense/kernel"] = weights["dense/kernel"][:100]
  with pytest.raises(ValueError, match="shape"):
    import_musicnn.load_into_model(weights, model)
  with pytest.raises(ValueError, match="do not match"):
    import_musicnn.load_into_model(os.path.join(REF, "MTT_musicnn_weights.npz"), model)


@needs_ref
def test_importer_writes_a_loadable_run(tmp_path, wav_patches):
  out = str(tmp_path / "MTT_vgg")
  config, model = import_musicnn.import_musicnn(os.path.join(REF, "MTT_vgg_weights.npz"), out)
  assert config.model.name == "musicnn_vgg" and config.model.logmel.musicnn_compat
  with open(os.path.join(out, "config.json")) as f:
    assert json.load(f)["model"]["name"] == "musicnn_vgg"
  with open(os.path.join(out, "tags.json")) as f:
    assert json.load(f) == list(MTT_LABELS)
  try:
    from jaxtag.training.checkpoint import load_for_inference
  except ImportError:       # this branch before the trainer's facade is merged: the plain Orbax layout
    import orbax.checkpoint as ocp
    fresh = _build("MTT_vgg")[1]
    with ocp.StandardCheckpointer() as ckptr:
      nnx.update(fresh, ckptr.restore(os.path.join(out, "checkpoints", "0", "state"), nnx.state(fresh)))
  else:
    fresh = load_for_inference(out)[2]
  x = jnp.asarray(wav_patches[1][:1])
  np.testing.assert_allclose(np.asarray(fresh.from_logmel(x)), np.asarray(model.from_logmel(x)), atol=1e-6)


TF_CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tf_checkpoint")


def test_reads_a_tf_checkpoint_without_tensorflow(tmp_path):
  """tests/data/tf_checkpoint was written by TensorFlow's own Saver (tests/data/make_tf_checkpoint.py): every
  tensor comes back with its dtype, shape and values; the weights import drops the optimizer's slots. The
  same reader matched TensorFlow's NewCheckpointReader on all 194 tensors of a full MTT_musicnn checkpoint
  (docs/results.md)."""
  import shutil
  import sys
  sys.path.insert(0, os.path.dirname(TF_CHECKPOINT))
  from make_tf_checkpoint import expected
  from jaxtag.tools import tf_checkpoint
  want = expected()
  for spec in (TF_CHECKPOINT, os.path.join(TF_CHECKPOINT, "model"), os.path.join(TF_CHECKPOINT, "model.index")):
    got = tf_checkpoint.read_checkpoint(spec)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
      value = np.asarray(value)
      assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
      np.testing.assert_array_equal(got[name], value)
  weights = import_musicnn.read_weights(TF_CHECKPOINT)
  assert "conv2d/kernel" in weights and not [n for n in weights if "Adam" in n or n in ("beta1_power", "global_step")]
  # The musicnn package's layout: an empty prefix (DIR/.index) and a checkpoint file naming another machine's path.
  moved = tmp_path / "MTT_musicnn"
  moved.mkdir()
  shutil.copy(os.path.join(TF_CHECKPOINT, "model.index"), moved / ".index")
  shutil.copy(os.path.join(TF_CHECKPOINT, "model.data-00000-of-00001"), moved / ".data-00000-of-00001")
  (moved / "checkpoint").write_text('model_checkpoint_path: "/home/someone/musicnn/MTT_musicnn/"\n')
  np.testing.assert_array_equal(tf_checkpoint.read_checkpoint(str(moved))["dense/kernel"], want["dense/kernel"])


def test_a_broken_tf_checkpoint_is_refused_in_one_line(tmp_path):
  from jaxtag.core import errors
  from jaxtag.tools import tf_checkpoint
  import shutil
  shutil.copytree(TF_CHECKPOINT, tmp_path / "ckpt")
  data = tmp_path / "ckpt" / "model.data-00000-of-00001"
  data.write_bytes(data.read_bytes()[:100])
  with pytest.raises(errors.UserError, match="truncated"):
    tf_checkpoint.read_checkpoint(str(tmp_path / "ckpt"))
  (tmp_path / "ckpt" / "model.index").write_bytes(b"not a table" * 10)
  with pytest.raises(errors.UserError, match="not a TensorFlow checkpoint index"):
    tf_checkpoint.read_checkpoint(str(tmp_path / "ckpt"))
  with pytest.raises(errors.MissingInput):
    tf_checkpoint.read_checkpoint(str(tmp_path / "nothing"))
