"""Readable plots: on every log axis jaxtag draws, the tick labels a reader sees are distinct and do not run
into each other (their rendered text extents are compared), and point labels do not overlap either."""
import itertools

import numpy as np
import pytest

from jaxtag.core import plots


@pytest.fixture
def drawn(monkeypatch):
  """The figures the plot functions would save, drawn (so text extents are real) and kept open."""
  figures = []

  def keep(fig, path):
    fig.tight_layout()
    fig.canvas.draw()
    figures.append(fig)

  monkeypatch.setattr(plots, "_save", keep)
  yield figures
  for fig in figures:
    plots.plt.close(fig)


def visible_tick_labels(ax, axis="x"):
  """``(text, extent)`` of every labelled tick inside the axis limits, major and minor."""
  renderer = ax.figure.canvas.get_renderer()
  lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
  ticks = ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks()
  return [(t.label1.get_text(), t.label1.get_window_extent(renderer)) for t in ticks
          if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi]


def assert_readable(labels):
  texts = [t for t, _ in labels]
  assert len(texts) >= 2, texts
  assert len(set(texts)) == len(texts), texts
  for (a, box_a), (b, box_b) in itertools.combinations(labels, 2):
    assert not box_a.overlaps(box_b), f"tick labels {a!r} and {b!r} overlap"


@pytest.mark.parametrize("low, high", [(0.05, 0.2), (0.03, 0.09), (0.004, 0.25), (2e-5, 0.3)])
def test_prevalence_axis_labels_are_distinct_and_apart(drawn, low, high):
  """Under a decade (the case whose minor labels ran together), two decades, and a 1M-song catalogue's span."""
  prevalence = np.geomspace(low, high, 40)
  rng = np.random.default_rng(0)
  rows = [{"tag": f"tag{i}", "prevalence": p, "roc_auc": 0.8 + 0.1 * rng.random(), "pr_auc": p + 0.3 * rng.random()}
          for i, p in enumerate(prevalence[::-1])]
  plots.per_tag_vs_prevalence("unused.png", rows)
  (fig,) = drawn
  for ax in fig.axes:
    labels = visible_tick_labels(ax)
    assert_readable(labels)
    assert all("times" not in t and "^" not in t for t, _ in labels if float(high) >= 1e-3 and low >= 1e-3), labels


def test_training_size_axis_reads_as_songs(drawn):
  rows = [{"model": m, "n_train": n, "roc_auc": 0.8, "pr_auc": 0.3, "rmse": 0.2}
          for m in ("waveform", "spectrogram") for n in (1000, 10000, 100000, 1000000)]
  plots.scaling("unused.png", rows, {})
  for ax in drawn[0].axes:
    labels = visible_tick_labels(ax)
    assert_readable(labels)
    assert [t for t, _ in labels] == ["1k", "10k", "100k", "1M"]


def test_point_labels_do_not_overlap(drawn):
  """Tags of nearly the same prevalence and score: each name is moved until it overlaps none before it."""
  rows = [{"tag": name, "prevalence": 0.1 + 0.001 * i, "roc_auc": 0.9 + 0.001 * i, "pr_auc": 0.5}
          for i, name in enumerate(["electronic", "indie", "alternative", "pop", "rock", "jazz"])]
  plots.per_tag_vs_prevalence("unused.png", rows)
  renderer = drawn[0].canvas.get_renderer()
  for ax in drawn[0].axes:
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 5
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


def test_plain_number_labels():
  assert [plots._plain_number(x) for x in (0.02, 0.5, 3, 2000, 1e6, 1e-4, 2e-5)] == [
      "0.02", "0.5", "3", "2k", "1M", "$10^{-4}$", "$2\\times10^{-5}$"]
