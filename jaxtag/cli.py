"""The one command-line style of every ``python -m jaxtag.*`` tool.

Each tool module has ``define_flags()`` (absl flags, defined only when the module runs as a program, so that
tests can import several tools into one process) and ``main(argv)``, and ends with::

  if __name__ == "__main__":   # grain/pack workers re-import __main__
    cli.run(main, define_flags, required=("workdir",))

``run`` also turns a user mistake (``choices.ConfigError``: an unknown value, a missing key or file) into
one line on stderr and exit status 2; ``--traceback`` shows the whole trace instead.
"""
from __future__ import annotations

import sys

from absl import app, flags

from jaxtag import choices


def _main_with_errors(main):
  def wrapped(argv):
    try:
      return main(argv)
    except choices.ConfigError as e:
      if flags.FLAGS.traceback:
        raise
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  return wrapped


def run(main, define_flags=None, required=()) -> None:
  """Defines the tool's flags (and ``--traceback``), marks ``required`` ones, and runs ``main`` under absl."""
  if define_flags is not None:
    define_flags()
  if "traceback" not in flags.FLAGS:
    flags.DEFINE_bool("traceback", False, "Show the full Python traceback of a configuration or data mistake.")
  if required:
    flags.mark_flags_as_required(list(required))
  app.run(_main_with_errors(main))
