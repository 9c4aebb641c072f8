"""The one command-line style of every ``python -m jaxtag.*`` tool.

Each tool module has ``define_flags()`` (absl flags, defined only when the module runs as a program, so that
tests can import several tools into one process) and ``main(argv)``, and ends with::

  if __name__ == "__main__":   # grain/pack workers re-import __main__
    cli.run(main, define_flags, required=("workdir",))

``run`` also turns a user mistake (``choices.ConfigError``: an unknown value, a missing key or file; a flag
absl rejects (unknown, missing, out of bounds, not a valid ``--checkpoint``); an override ml_collections
rejects while absl parses the flags; a config file that does not load; an ``app.UsageError``) and a failed
checkpoint save (``errors.CheckpointSaveError``) into one line on stderr and exit status 2; ``--traceback``
shows the whole trace instead. Every other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import re
import sys

from absl import app, flags
from ml_collections.config_flags.config_flags import is_config_flag   # not re-exported by the package

from jaxtag.core import choices, config as config_lib, errors

# What ml_collections raises for a bad override or config file (while absl parses, or on first access).
_CONFIG_ERRORS = (KeyError, AttributeError, TypeError, ValueError, OSError, flags.Error)
_in_main = False


def one_line(error: BaseException) -> str:
  """ml_collections' messages come quoted, with newlines ("'stepz'\nDid you mean ..."): one clean line."""
  text = error.args[0] if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str) else str(error)
  text = text.replace("\\'", "'").replace("\\n", "\n").strip().strip('"')
  if len(text) > 1 and text[0] == text[-1] == "'":   # an exception's repr inside another's message
    text = text[1:-1]
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if lines and re.fullmatch(r"'?'[\w.]+''?", lines[0]):   # ConfigDict's KeyError: the key, then "Did you mean"
    lines[0] = f"unknown key {lines[0].strip(chr(39))!r}"
  missing = [line for line in lines if "No such file" in line]
  if missing:   # a config file that does not load: the OS error says which
    return f"cannot load the config file: {missing[-1]}"
  return "; ".join(lines)


def _fail(error: BaseException, prefix: str = "", text: str | None = None) -> None:
  if "--traceback" in sys.argv or ("traceback" in flags.FLAGS and flags.FLAGS.is_parsed() and flags.FLAGS.traceback):
    raise error
  print(f"error: {prefix}{one_line(error) if text is None else text}", file=sys.stderr, flush=True)
  sys.exit(errors.EXIT_USER_ERROR)


def _flag_error(error: flags.Error) -> str:
  """absl's message, with the fix: a missing required flag, an unknown one (see --help), a config override the
  schema names."""
  text = str(error)
  missing = re.search(r"Flag --(\w+) must have a value other than None", text)
  if missing:
    return f"--{missing.group(1)} is required"
  if isinstance(error, flags.UnrecognizedFlagError):
    return f"{text} (see --help)"
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if "Traceback (most recent call last)" in text:   # a config file whose get_config raised: its last line says why
    return f"{lines[0]} {lines[-1]}"
  described = config_lib.describe_override_error(text)
  if described:
    return f"config: {described}"
  return "; ".join(lines)


def _parse(argv):
  """absl's parse, with its errors (a config override of an unknown key or the wrong type, a config file that does
  not load) as one line instead of absl's two-line ``FATAL Flags parsing error`` and exit status 1."""
  try:
    config_lib.check_overrides(argv[1:])
    args = flags.FLAGS(argv)
  except choices.ConfigError as e:
    _fail(e, "config: ")
  except flags.Error as e:
    _fail(e, text=_flag_error(e))
  for name in list(flags.FLAGS):   # a config file loads on first use: load it now, while parsing
    if is_config_flag(flags.FLAGS[name]) and flags.FLAGS[name].value is not None:
      try:
        _touched(flags.FLAGS, name)
      except choices.ConfigError as e:
        _fail(e, text=str(e))
  return args


def checkpoint_flag(default: str = "best") -> None:
  """``--checkpoint``: best | latest | a step number, read by ``choices.checkpoint`` while absl parses (so a
  typo fails before a model loads); the value is ``"best"``, ``"latest"`` or an ``int``."""
  flags.DEFINE(_CheckpointParser(), "checkpoint", default, "best | latest | a step number.")


class _CheckpointParser(flags.ArgumentParser):
  def parse(self, argument):
    return choices.checkpoint(argument)

  def flag_type(self) -> str:
    return "best|latest|step"


def _touched(FLAGS, name: str):
  """``FLAGS.<name>``, loaded: a config file that failed to load is a placeholder raising on first use, so touch
  it and report the failure as a ``ConfigError``."""
  try:
    config = getattr(FLAGS, name)
    config.to_dict()
  except choices.ConfigError:
    raise
  except _CONFIG_ERRORS as e:
    raise choices.ConfigError(f"config: {one_line(e)}") from e
  return config


def loaded_config(FLAGS, name: str = "config", reads_data: bool = True):
  """``FLAGS.<name>``, loaded and checked against the config schema (``config_lib.validate``; ``reads_data=False``:
  a command that never reads the data set, so its paths are not required)."""
  return config_lib.validate(_touched(FLAGS, name), reads_data)


def _main_with_errors(main):
  def wrapped(argv):
    global _in_main
    _in_main = True
    try:
      return main(argv)
    except (choices.ConfigError, errors.CheckpointSaveError, app.UsageError) as e:
      _fail(e)
  return wrapped


def run(main, define_flags=None, required=()) -> None:
  """Defines the tool's flags (and ``--traceback``), marks ``required`` ones, and runs ``main`` under absl."""
  global _in_main
  _in_main = False
  if define_flags is not None:
    define_flags()
  if "traceback" not in flags.FLAGS:
    flags.DEFINE_bool("traceback", False, "Show the full Python traceback of a configuration or data mistake.")
  if required:
    flags.mark_flags_as_required(list(required))
  try:
    app.run(_main_with_errors(main), flags_parser=_parse)
  except _CONFIG_ERRORS as e:   # raised while absl parsed the flags (a bad --config.* override)
    if _in_main:
      raise
    _fail(e, "config: ")
