"""One way to make the train state: created on the mesh, its abstract twin, models built elsewhere, paths."""
import jax
import numpy as np

from jaxtag.models import registry
from jaxtag.core import paths, sharding
from jaxtag.training import train_state
from jaxtag.training import step as step_lib


def _config():
  from configs import smoke
  return smoke.get_config()


def test_create_is_replicated_on_the_mesh_and_matches_abstract():
  config, mesh = _config(), sharding.make_mesh()
  graphdef, state = train_state.create(config, 12, mesh)
  like = train_state.abstract(config, 12, mesh)
  repl = sharding.replicated(mesh)
  got, want = jax.tree.leaves(state), jax.tree.leaves(like)
  assert len(got) == len(want) > 0
  for x, s in zip(got, want):
    assert x.shape == s.shape and x.dtype == s.dtype
    assert x.sharding.is_equivalent_to(repl, x.ndim) and s.sharding == repl
  assert int(state["step"]) == 0 and int(state["nan_step"]) == step_lib.NAN_NONE


def test_create_equals_the_eagerly_built_model():
  """The jitted initialisers give the model's own parameters (same seed): nothing changes but placement."""
  config, mesh = _config(), sharding.make_mesh()
  _, state = train_state.create(config, 12, mesh, seed=3)
  _, params, _ = step_lib.split_model(registry.new_model(config, 12, seed=3))
  for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_on_mesh_keeps_placed_trees_and_places_host_ones():
  mesh = sharding.make_mesh()
  _, state = train_state.create(_config(), 4, mesh)
  assert train_state.on_mesh(state, mesh) is state
  placed = train_state.on_mesh({"w": np.ones((3,), np.float32)}, mesh)
  assert placed["w"].sharding.is_equivalent_to(sharding.replicated(mesh), 1)


def test_paths_local_and_remote():
  assert paths.is_remote("gs://b/x") and not paths.is_remote("/tmp/x")
  assert str(paths.absolute("gs://b/run")) == "gs://b/run"
  assert str(paths.absolute("runs/a")).startswith("/")
  assert paths.join("gs://b/audio", "x/1.mp3") == "gs://b/audio/x/1.mp3"
  assert paths.join("/data", "x/1.mp3") == "/data/x/1.mp3"
  assert paths.join("/data", "/abs/1.mp3") == "/abs/1.mp3"
  assert paths.parent("gs://b/m/songs.jsonl") == "gs://b/m"
