"""ONNX export: every registry model, built tiny with random weights and BatchNorm statistics, exports and
onnxruntime equals jaxtag's eval-mode output (<= 1e-5); on real audio chunks through the whole run path for a
spectrogram, a waveform and an imported musicnn model at two batch sizes; the metadata alone (docs/onnx_tag.py,
no jaxtag) tags as musicnn; a primitive without an ONNX lowering fails in one line that names it."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, SHARED

ort = pytest.importorskip("onnxruntime", reason="the ONNX export extra is not installed: pip install -e '.[export]'")
pytest.importorskip("onnx", reason="the ONNX export extra is not installed: pip install -e '.[export]'")

from jaxtag.core import errors  # noqa: E402
from jaxtag.models import registry  # noqa: E402
from jaxtag.serving import export, inference, onnx_lowering  # noqa: E402
from jaxtag.training import checkpoint  # noqa: E402

REF = os.path.join(SHARED, "musicnn_ref")
WAV = os.path.join(REF, "synth_chords_clicks_16k.wav")
needs_ref = pytest.mark.skipif(not os.path.isdir(REF), reason="../shared/musicnn_ref not present")


def _random_model(config, n_tags, seed):
  """The config's model with NumPy-drawn weights (He-scaled kernels) and non-trivial BatchNorm statistics and
  affine terms, so the export's handling of BN is really tested. Built from the abstract model: initialising
  through JAX compiles every initializer shape (seconds per model on a small CPU)."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  graphdef, state = nnx.split(registry.abstract_model(config, n_tags))
  rng = np.random.default_rng(seed)
  draw = {"mean": lambda n: rng.normal(0, 0.3, n), "var": lambda n: rng.uniform(0.5, 2.0, n),
          "scale": lambda n: rng.uniform(0.5, 1.5, n), "bias": lambda n: rng.normal(0, 0.2, n),
          "kernel": lambda n: rng.normal(0, 1, n) * np.sqrt(2 / max(1, int(np.prod(n[:-1])))),
          "q": lambda n: rng.uniform(0.8, 1.2, n)}       # the harmonic filterbank's bandwidth divisor (init 1)

  def fill(path, leaf):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      return jax.random.key(seed)
    name = str(getattr(path[-2], "key", ""))
    if name not in draw:
      return jnp.zeros(leaf.shape, leaf.dtype)
    return jnp.asarray(draw[name](leaf.shape), leaf.dtype)
  return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))


def _smoke_run(tmp, frontend):
  from configs import smoke
  from jaxtag.data import generate
  config = smoke.get_config(frontend if frontend != "musicnn" else "model=musicnn")
  config.model.scalar_bn_quirk = frontend == "waveform"   # both BN layouts of the back-end
  tags = list(generate.TAGS)
  model = _random_model(config, len(tags), seed=3)
  w = str(tmp / frontend)
  checkpoint.save_inference_checkpoint(w, config, model, tags)
  return w


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("export_runs")
  out = {f: _smoke_run(tmp, f) for f in ("spectrogram", "waveform", "musicnn")}   # musicnn trained in chunks
  if os.path.isdir(REF):
    from jaxtag.tools import import_musicnn
    for name in ("MTT_musicnn", "MTT_vgg"):
      out[name] = str(tmp / name)
      import_musicnn.import_musicnn(os.path.join(REF, f"{name}_weights.npz"), out[name])
  return out


def _real_audio():
  """Real audio for the chunks: musicnn's synthetic reference mix (or, without the bundle, synthesised piano)."""
  if os.path.exists(WAV):
    return sf.read(WAV, dtype="float32")
  from jaxtag.data import synth
  rng = np.random.default_rng(0)
  return 0.3 * np.concatenate([synth.note("piano", f, 2.0, rng) for f in (220, 330, 262, 196, 247)]), 16000


def _check(workdir, tmp_path, batches=(1, 3)):
  out = str(tmp_path / "model.onnx")
  _, c, tags = export.export(workdir, out)
  session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
  meta = session.get_modelmeta().custom_metadata_map
  assert json.loads(meta["jaxtag.tags"]) == list(tags) and json.loads(meta["jaxtag.contract"]) == c.to_dict()
  with open(os.path.join(workdir, "contract.json")) as f:
    assert json.load(f) == c.to_dict()
  w = json.loads(meta["jaxtag.windows"])
  inp = session.get_inputs()[0]
  assert inp.shape[0] == "batch" and inp.shape[1] == w["window_samples"]
  audio, sr = _real_audio()
  tagger = inference.RunModel(workdir, batch=4)
  ours = tagger.run(tagger.contract.model_inputs(audio, sr))[0]                      # jaxtag's inputs
  sys.path.insert(0, os.path.join(ROOT, "docs"))
  try:
    import onnx_tag
  finally:
    sys.path.pop(0)
  x = onnx_tag.windows_of(audio, sr, w)                                              # the ONNX user's
  assert len(x) == len(ours) >= max(batches)
  errs = []
  for b in batches:
    theirs = session.run(None, {inp.name: x[:b]})[0]
    assert theirs.shape == (b, len(tags))
    errs.append(float(np.abs(theirs - ours[:b]).max()))
  print(f"{os.path.basename(workdir)}: max |onnxruntime - jaxtag| at batch {batches} = {errs}")
  assert max(errs) <= 1e-5
  return out, ours


def test_spectrogram_model(runs, tmp_path):
  _check(runs["spectrogram"], tmp_path)


def test_waveform_model(runs, tmp_path):
  _check(runs["waveform"], tmp_path)


def test_musicnn_architecture_trained_in_chunks(runs, tmp_path):
  """A musicnn model trained by jaxtag (chunks contract): per-chunk centred log-mel, first 187 frames."""
  _check(runs["musicnn"], tmp_path)


@needs_ref
def test_imported_musicnn_vgg(runs, tmp_path):
  _, ours = _check(runs["MTT_vgg"], tmp_path)
  assert np.abs(ours - np.load(os.path.join(REF, "MTT_vgg_synth_outputs.npz"))["prob"]).max() <= 1e-4


@needs_ref
def test_imported_musicnn_tags_as_musicnn_without_jaxtag(runs, tmp_path):
  out, ours = _check(runs["MTT_musicnn"], tmp_path)
  ref = np.load(os.path.join(REF, "MTT_musicnn_synth_outputs.npz"))
  assert np.abs(ours - ref["prob"]).max() <= 1e-4
  code = ("import json, sys; sys.path.insert(0, 'docs'); import onnx_tag; "
          f"s, tags, w = onnx_tag.load_model({out!r}); mean, top, tg = onnx_tag.tag(s, tags, w, {WAV!r}); "
          "assert 'jaxtag' not in sys.modules; print(json.dumps(tg.tolist()))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert np.abs(np.asarray(json.loads(proc.stdout)) - ref["prob"]).max() <= 1e-4


def test_cli_writes_and_refuses_a_missing_run(runs, tmp_path):
  proc = subprocess.run([sys.executable, "-m", "jaxtag.export", f"--workdir={runs['spectrogram']}",
                         f"--out={tmp_path / 'm.onnx'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0 and "wrote" in proc.stdout and os.path.getsize(tmp_path / "m.onnx") > 10_000, proc.stderr
  proc = subprocess.run([sys.executable, "-m", "jaxtag.export", f"--workdir={tmp_path / 'nope'}",
                         f"--out={tmp_path / 'x.onnx'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error:")


def _tiny_config(name):
  """The smoke config of ``name`` shrunk further: every registry model at a width that traces, lowers and
  runs in about a second."""
  from configs import smoke
  config = smoke.get_config(name if name in ("spectrogram", "waveform") else f"model={name}")
  config.model.width, config.model.spectrogram_k, config.model.waveform_scale = 0.125, 2, 0.25
  config.model.backend_filters, config.model.backend_units = 16, 32
  return config


@pytest.mark.parametrize("name", registry.MODELS)
def test_every_registry_model_exports(name):
  """The registry's models, baselines and the recurrent CRNN included, lowered from their jaxpr with no
  per-model code: onnxruntime's probabilities on two real-audio chunks equal jaxtag's (<= 1e-5)."""
  import jax
  from jaxtag.models import contract
  config = _tiny_config(name)
  model = _random_model(config, 7, seed=3)
  c = contract.from_config(config)
  start = time.perf_counter()
  m = export.build(model, config, [f"t{i}" for i in range(7)], c)
  seconds = time.perf_counter() - start
  session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
  audio, _ = _real_audio()
  x = np.stack([audio[:c.chunk_samples], audio[c.chunk_samples:2 * c.chunk_samples]]).astype(np.float32)
  theirs = session.run(None, {"waveform": x})[0]
  ours = np.asarray(jax.jit(export.inference_fn(model, config, c))(x))
  assert theirs.shape == ours.shape == (2, 7)
  assert 0.02 < ours.std() and ours.min() < 0.98 and ours.max() > 0.02      # not saturated: a real comparison
  print(f"{name}: {len(m.graph.node)} nodes in {seconds:.2f} s, max |onnxruntime - jaxtag| = "
        f"{np.abs(theirs - ours).max():.2e}")
  assert np.abs(theirs - ours).max() <= 1e-5


def test_unsupported_primitive_fails_in_one_line():
  """A model whose inference runs a data-dependent loop cannot become a fixed graph: a UserError (one
  ``error:`` line from cli.run) that names the model, the primitive and why."""
  import jax
  from jaxtag.models import contract

  def looping(wave, train=False):
    return jax.lax.while_loop(lambda s: s[0].sum() > 1.0, lambda s: (s[0] * 0.5, s[1] + 1), (wave[:, :3], 0))[0]
  config = _tiny_config("samplecnn")
  with pytest.raises(errors.UserError) as e:
    export.build(looping, config, ["a", "b", "c"], contract.from_config(config))
  message = str(e.value)
  assert "\n" not in message and "model 'samplecnn' cannot export" in message and "'while'" in message
  assert "fixed ONNX graph" in message and isinstance(e.value, onnx_lowering.Unsupported)
