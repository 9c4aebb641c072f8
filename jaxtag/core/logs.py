"""What reaches the console: jaxtag's own INFO lines, and everyone's warnings and errors.

Orbax logs ~25 INFO lines per checkpoint ("Save Finalize is syncing with other hosts", "Queuing deletion
of steps"), JAX and grain a few more at start; with them the progress line drowns (274 of 560 lines of
the smoke run were Orbax's). All of them log through absl's handler (absl logging, or Python loggers that
propagate to the root logger), so one filter on that handler decides; other libraries' warnings and
errors pass as their one line, without the traceback they may carry. ``--verbosity`` (absl's own flag)
given explicitly turns the filter off and shows every library's lines at that level.
"""
from __future__ import annotations

import logging as py_logging
import os

from absl import logging

JAXTAG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep   # the package
# Warnings of libraries that are expected here and say nothing actionable.
QUIET_WARNINGS = (
    "Requested `tracked_metric`; did not provide metrics.",   # Orbax: only best-so-far saves carry metrics
)


class OwnInfoOnly(py_logging.Filter):
  """Passes warnings and errors of every module, INFO only from modules inside the jaxtag package."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    own = record.pathname.startswith(JAXTAG_DIR)
    if record.levelno < py_logging.WARNING:
      return own
    if not own and record.exc_info:   # e.g. Orbax's four tracebacks of one failed async save: the line stays
      record.exc_info, record.exc_text = None, None
    return not any(record.getMessage().startswith(q) for q in QUIET_WARNINGS)


_FILTER = OwnInfoOnly()


def configure(is_main_process: bool, verbosity_given: bool) -> None:
  """Process 0 logs INFO (jaxtag's own unless ``verbosity_given``), the others warnings and errors only."""
  handler = logging.get_absl_handler()
  handler.removeFilter(_FILTER)
  if verbosity_given:
    return   # absl already applied --verbosity to every logger
  logging.set_verbosity(logging.INFO if is_main_process else logging.WARNING)
  handler.addFilter(_FILTER)
