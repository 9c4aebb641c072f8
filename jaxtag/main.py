"""The one entry point: ``python -m jaxtag.main --config=configs/private_1m.py --workdir=DIR``.

Running the same command again resumes from the newest checkpoint in ``--workdir``. All logic lives in
``jaxtag.training.train`` so that tests and notebooks can call ``train_and_evaluate`` directly. The console shows
jaxtag's own INFO lines only, unless ``--verbosity`` is given (``jaxtag.core.logs``); a config, data or
run-directory mistake, or a failed checkpoint save, ends in one line (``jaxtag.core.cli``).
"""
from absl import app, flags
from ml_collections import config_flags



def define_flags():
  """Flags exist only when run as a program (``tests/faults.py`` defines them the same way)."""
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/mtt.py:waveform,small.",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory (local or gs://) for checkpoints, metrics and reports.")
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process CPU/GPU runs).")
  flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process CPU/GPU runs).",
                       lower_bound=1)
  flags.DEFINE_integer("process_id", None, "This process's index (multi-process CPU/GPU runs).",
                       lower_bound=0)


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  run()


def run(hooks=()):
  """The run the flags describe, with optional loop ``hooks`` (``jaxtag.training.train.Hook``): tools and tests that
  need to see inside the loop wrap this entry point instead of adding keys to the config."""
  from jaxtag.core import choices, cli, distributed, logs, remote
  from jaxtag.data import workers
  verbosity_given = "verbosity" in FLAGS and FLAGS["verbosity"].present
  logs.configure(is_main_process=True, verbosity_given=verbosity_given)
  config = cli.loaded_config(FLAGS)   # config mistakes fail before waiting for the other processes
  remote.require_gcs(workdir=FLAGS.workdir, **{"config.data.manifest": config.data.get("manifest", "")})
  import os
  if os.path.isfile(FLAGS.workdir):   # (a gs:// path is never a local file)
    raise choices.ConfigError(f"--workdir={FLAGS.workdir} is a file; give a directory (new, or a run to resume)")
  try:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    from jaxtag.training import train
    import jax
    # One log for the whole run: processes other than 0 report only warnings and errors.
    logs.configure(is_main_process=jax.process_index() == 0, verbosity_given=verbosity_given)
    return train.train_and_evaluate(config, FLAGS.workdir, hooks=hooks)
  finally:
    workers.release_shared_memory()   # no "leaked shared_memory" warning at exit


if __name__ == "__main__":   # required: grain workers re-import __main__
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("config", "workdir"))
