"""Early stopping: P validations in a row without a new best end the run; a new best resets the count."""
from jaxtag.training import early_stopping


def test_stops_after_patience_validations_without_a_new_best():
  host, seen = {}, []
  for improved in (True, False, True, False, False, False):
    host = early_stopping.update(host, improved)
    seen.append(early_stopping.due(host, 3))
  assert seen == [False, False, False, False, False, True]
  assert host[early_stopping.KEY] == 3


def test_patience_zero_never_stops():
  host = {early_stopping.KEY: 100}
  assert not early_stopping.due(host, 0)
