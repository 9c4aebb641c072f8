"""The one entry point: ``python -m jaxtag.main --config=configs/private_1m.py --workdir=DIR``.

Running the same command again resumes from the newest checkpoint in ``--workdir``. All logic lives in
``jaxtag.train`` so that tests and notebooks can call ``train_and_evaluate`` directly. A mistake of the
user (``errors.UserError``: config, data, run directory) or a failed checkpoint save ends with one line on
stderr and exit status 2 (``--traceback`` shows the trace); the console shows jaxtag's own INFO lines
only, unless ``--verbosity`` is given (``jaxtag.logs``).
"""
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/mtt.py:waveform,small.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory (local or gs://) for checkpoints, metrics and reports.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process CPU/GPU runs).")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process CPU/GPU runs).")
flags.DEFINE_integer("process_id", None, "This process's index (multi-process CPU/GPU runs).")
flags.DEFINE_bool("traceback", False, "Show the full traceback of a config, data or checkpoint error.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


_CONFIG_ERRORS = (KeyError, AttributeError, TypeError, ValueError, OSError, flags.Error)


def _one_line(error: BaseException) -> str:
  """ml_collections' messages come quoted, with newlines ("'stepz'\nDid you mean ..."): one clean line."""
  text = error.args[0] if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str) else str(error)
  text = text.replace("\\'", "'").replace("\\n", "\n").strip().strip('"')
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if lines and re.fullmatch(r"'?'[\w.]+''?", lines[0]):   # ConfigDict's KeyError: the key, then "Did you mean"
    lines[0] = f"unknown key {lines[0].strip(chr(39))!r}"
  missing = [line for line in lines if "No such file" in line]
  if missing:   # a config file that does not load: the OS error says which
    return f"cannot load the config file: {missing[-1]}"
  return "; ".join(lines)


def _fail(error: BaseException, prefix: str = "") -> None:
  """One line on stderr, exit 2; the whole trace with --traceback."""
  from jaxtag import errors
  if "--traceback" in sys.argv or (FLAGS.is_parsed() and FLAGS.traceback):
    raise error
  print(f"error: {prefix}{_one_line(error)}", file=sys.stderr, flush=True)
  sys.exit(errors.EXIT_USER_ERROR)


def _config():
  """``FLAGS.config``: the config file is loaded (and overrides applied) on first access."""
  try:
    config = FLAGS.config
    config.to_dict()   # a file that failed to load is a placeholder that raises on first use
    return config
  except _CONFIG_ERRORS as e:
    _fail(e, "config: ")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from jaxtag import distributed, errors, logs
  global _in_main
  _in_main = True
  logs.configure(is_main_process=True, verbosity_given=FLAGS["verbosity"].present)
  try:
    config = _config()   # config mistakes fail before waiting for the other processes
    from jaxtag import remote
    remote.require_gcs(workdir=FLAGS.workdir, **{"config.data.manifest": config.data.get("manifest", "")})
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    from jaxtag import train
    import jax
    # One log for the whole run: processes other than 0 report only warnings and errors.
    logs.configure(is_main_process=jax.process_index() == 0, verbosity_given=FLAGS["verbosity"].present)
    train.train_and_evaluate(config, FLAGS.workdir)
  except (errors.UserError, errors.CheckpointSaveError) as e:
    _fail(e)
  finally:
    from jaxtag.data import workers
    workers.release_shared_memory()


_in_main = False


def run():
  """``app.run(main)``, with config overrides that do not apply (an unknown key, a value of the wrong type)
  as one line too: ml_collections raises those while absl parses the flags, before ``main`` runs."""
  try:
    app.run(main)
  except _CONFIG_ERRORS as e:
    if _in_main:
      raise
    _fail(e, "config: ")


if __name__ == "__main__":   # required: grain workers re-import __main__
  run()
