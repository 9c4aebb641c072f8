"""The one command-line style of every ``python -m jaxtag.*`` tool.

Each tool module has ``define_flags()`` (absl flags, defined only when the module runs as a program, so that
tests can import several tools into one process) and ``main(argv)``, and ends with::

  if __name__ == "__main__":   # grain/pack workers re-import __main__
    cli.run(main, define_flags, required=("workdir",))

``run`` also turns a user mistake (``choices.ConfigError``: an unknown value, a missing key or file; an
override ml_collections rejects while absl parses the flags; a config file that does not load) and a failed
checkpoint save (``errors.CheckpointSaveError``) into one line on stderr and exit status 2; ``--traceback``
shows the whole trace instead.
"""
from __future__ import annotations

import re
import sys

from absl import app, flags

from jaxtag.core import choices, config as config_lib, errors

# What ml_collections raises for a bad override or config file (while absl parses, or on first access).
_CONFIG_ERRORS = (KeyError, AttributeError, TypeError, ValueError, OSError, flags.Error)
_in_main = False


def one_line(error: BaseException) -> str:
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
  if "--traceback" in sys.argv or ("traceback" in flags.FLAGS and flags.FLAGS.is_parsed() and flags.FLAGS.traceback):
    raise error
  print(f"error: {prefix}{one_line(error)}", file=sys.stderr, flush=True)
  sys.exit(errors.EXIT_USER_ERROR)


def loaded_config(FLAGS, name: str = "config", reads_data: bool = True):
  """``FLAGS.<name>``, loaded and checked against the config schema (``config_lib.validate``; ``reads_data=False``:
  a command that never reads the data set, so its paths are not required): a config file that failed to load is
  a placeholder raising on first use, so touch it here and report the failure as a ``ConfigError``."""
  try:
    config = getattr(FLAGS, name)
    config.to_dict()
  except choices.ConfigError:
    raise
  except _CONFIG_ERRORS as e:
    raise choices.ConfigError(f"config: {one_line(e)}") from e
  return config_lib.validate(config, reads_data)


def _parse_flags(argv):
  """absl's flag parsing, with a mistake in a ``--config`` flag (an unknown key, a value of the wrong type, a config
  argument the file rejects) as one line instead of absl's "FATAL Flags parsing error" and its traceback."""
  try:
    config_lib.check_overrides(argv[1:])
    return flags.FLAGS(argv)
  except choices.ConfigError as e:
    _fail(e, "config: ")
  except flags.Error as e:
    text = str(e)
    if "Traceback" in text:   # raised inside the config file: its last line is the error
      text = [line.strip() for line in text.splitlines() if line.strip()][-1].split(": ", 1)[-1]
    described = config_lib.describe_override_error(text)
    _fail(choices.ConfigError(described or text), "config: " if described or "Traceback" in str(e) else "")


def _main_with_errors(main):
  def wrapped(argv):
    global _in_main
    _in_main = True
    try:
      return main(argv)
    except (choices.ConfigError, errors.CheckpointSaveError) as e:
      _fail(e)
  return wrapped


def run(main, define_flags=None, required=()) -> None:
  """Defines the tool's flags (and ``--traceback``), marks ``required`` ones, and runs ``main`` under absl."""
  if define_flags is not None:
    define_flags()
  if "traceback" not in flags.FLAGS:
    flags.DEFINE_bool("traceback", False, "Show the full Python traceback of a configuration or data mistake.")
  if required:
    flags.mark_flags_as_required(list(required))
  try:
    app.run(_main_with_errors(main), flags_parser=_parse_flags)
  except _CONFIG_ERRORS as e:   # raised while absl parsed the flags (a bad --config.* override)
    if _in_main:
      raise
    _fail(e, "config: ")
