"""The trainer's feed: the train step compiles once across steps and a checkpoint restore; loader settings are
resolved from the machine and pinned per workdir."""
import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from configs import smoke
from jaxtag.core import rundir
from jaxtag.training import feed, train
from jaxtag.data import tuning

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def _tiny(workdir_cache, steps):
  c = smoke.get_config()
  c.data.update(dataset="generated", generated_n=32, generated_clip_seconds=3.0,
                chunk_seconds=1.0, cache_dir=workdir_cache,
                num_workers=0)
  c.train.update(global_batch_size=16, steps=steps, checkpoint_every=2, eval_every=1000, log_every=2,
                 metrics_every=2)
  c.eval.update(batch_size=16, max_songs=4)
  return c


def _compiles_of_train_step(config, workdir) -> int:
  """Compilations of the train step during one run (the persistent cache is off, so a reuse of the first
  run's executable cannot hide a recompilation)."""
  names = []

  def listener(event, duration, **kwargs):
    if event == BACKEND_COMPILE:
      names.append(kwargs.get("fun_name"))

  jax.monitoring.register_event_duration_secs_listener(listener)
  cached = jax.config.jax_enable_compilation_cache
  jax.config.update("jax_enable_compilation_cache", False)
  compilation_cache.reset_cache()        # the "is the cache used" answer is memoised per process
  try:
    train.train_and_evaluate(config, workdir)
  finally:
    jax.config.update("jax_enable_compilation_cache", cached)
    compilation_cache.reset_cache()
    jax.monitoring.unregister_event_duration_listener(listener)
  return names.count("jit(train_step)")


def test_train_step_compiles_once_across_steps_and_restore(tmp_path):
  """Fresh state, then the step's own outputs, then (in a resumed run) Orbax-restored state all hit one
  executable: no recompilation after the first step, and the restore brings back identical types/shardings."""
  cache, workdir = str(tmp_path / "cache"), str(tmp_path / "run")
  assert _compiles_of_train_step(_tiny(cache, steps=4), workdir) == 1
  assert _compiles_of_train_step(_tiny(cache, steps=8), workdir) == 1   # resumed from step 4


def test_loader_settings_are_resolved_and_pinned(tmp_path):
  d = smoke.get_config().data
  assert d.num_workers == tuning.AUTO
  assert tuning.resolve(d, cpus=16)["num_workers"] == 15 and tuning.resolve(d, cpus=2)["num_workers"] == 1
  d.packed_dir = "/packs"
  assert tuning.resolve(d, cpus=16)["num_workers"] == 4 and tuning.resolve(d, cpus=2)["num_workers"] == 1
  d.packed_dir = ""
  first = feed.pin_loader(d, str(tmp_path), resuming=False)
  assert first.num_workers == tuning.resolve(d)["num_workers"] > 0
  (tmp_path / rundir.LOADER).write_text('{"num_workers": 7}')   # as if first started on a bigger machine
  assert feed.pin_loader(d, str(tmp_path), resuming=True).num_workers == 7
  d.num_workers = 3
  with pytest.raises(ValueError, match="num_workers=7"):
    feed.pin_loader(d, str(tmp_path), resuming=True)
  assert feed.pin_loader(d, str(tmp_path), resuming=False).num_workers == 3   # a fresh run may change it
