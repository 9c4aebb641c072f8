"""The one entry point: ``python -m jaxtag.main --config=configs/private_1m.py --workdir=DIR``.

Running the same command again resumes from the newest checkpoint in ``--workdir``. All logic lives in
``jaxtag.train`` so that tests and notebooks can call ``train_and_evaluate`` directly.
"""
from absl import app, flags, logging
from ml_collections import config_flags



def define_flags():
  """Flags exist only when run as a program (``tests/faults.py`` defines them the same way)."""
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/mtt.py:waveform,small.",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory (local or gs://) for checkpoints, metrics and reports.")
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process CPU/GPU runs).")
  flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process CPU/GPU runs).")
  flags.DEFINE_integer("process_id", None, "This process's index (multi-process CPU/GPU runs).")


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  run()


def run(hooks=()):
  """The run the flags describe, with optional loop ``hooks`` (``jaxtag.train.Hook``): tools and tests that
  need to see inside the loop wrap this entry point instead of adding keys to the config."""
  from jaxtag import distributed
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  from jaxtag import train
  import jax
  # One log for the whole run: processes other than 0 report only warnings and errors.
  logging.set_verbosity(logging.INFO if jax.process_index() == 0 else logging.WARNING)
  return train.train_and_evaluate(FLAGS.config, FLAGS.workdir, hooks=hooks)


if __name__ == "__main__":   # required: grain workers re-import __main__
  from jaxtag import cli
  cli.run(main, define_flags, required=("config", "workdir"))
