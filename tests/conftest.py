"""Test set-up: 8 fake CPU devices (before jax is imported) and parsed absl flags (grain#1355)."""
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent XLA cache for the session, inherited by the training runs the tests launch: many of them
# compile the same tiny models (a run, then its resume after a kill), and on 2 cores compiling is most of a
# test's time. Every executable is still compiled once per session; only repeats are read back.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxtag-tests-xla-")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory):
  """One cache of generated corpora for every test that runs jaxtag.main (each size is generated once)."""
  return str(tmp_path_factory.mktemp("corpus_cache"))


def save_untrained_run(path: str) -> str:
  """An untrained smoke-config model (numpy-corpus tags, 1-s chunks) saved as a run: tools that only need a
  run directory (predict, tag) are tested without training."""
  from configs import smoke
  from jaxtag.training import checkpoint
  from jaxtag.data import generate
  config = smoke.get_config()
  config.data.chunk_seconds = 1.0
  tags = list(generate.TAGS)
  checkpoint.save_inference_checkpoint(path, config, checkpoint.new_model(config, len(tags)), tags)
  return path


def data_config(**data):
  """A data config for in-process pipeline tests: 1-s chunks, no worker processes, one read thread."""
  from jaxtag.core import config as config_lib
  c = config_lib.base_config()
  c.data.chunk_seconds, c.data.num_workers, c.data.read_threads = 1.0, 0, 1
  c.data.update(data)
  return c.data
