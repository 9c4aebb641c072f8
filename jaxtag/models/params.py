"""``python -m jaxtag.summary --config=configs/mtt.py:waveform``: the model's parameter table and count.

The last line is ``total_params=N``: conv/dense kernels and biases plus BN scale and bias (``nnx.Param``
leaves). BN running statistics (``nnx.BatchStat``) are listed apart and not counted, as in the paper.
The model is built abstractly (``nnx.eval_shape``): nothing is allocated or compiled.
"""
from __future__ import annotations

import jax
from absl import app, flags
from clu import parameter_overview
from flax import nnx
from ml_collections import config_flags

from jaxtag.models import registry
from jaxtag.models.layers import count_params

def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/mtt.py:waveform,small.")
  flags.DEFINE_integer("n_tags", 50, "Number of output tags (MTT and MSD have 50).", lower_bound=1)


FLAGS = flags.FLAGS


def summarize(config, n_tags: int = 50) -> str:
  """The per-layer table (clu's parameter overview of the ``nnx.Param`` leaves) and ``total_params=N``."""
  model = registry.abstract_model(config, n_tags)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  stats = sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
  return "\n".join([
      f"model={config.model.name} n_tags={n_tags}",
      parameter_overview.get_parameter_overview(params, include_stats=False),
      f"BN running statistics (not counted): {stats:,}",
      f"total_params={count_params(model)}",
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from jaxtag.core import cli
  print(summarize(cli.loaded_config(FLAGS, reads_data=False), FLAGS.n_tags))


if __name__ == "__main__":
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("config",))
