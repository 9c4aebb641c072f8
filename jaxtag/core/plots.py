"""Every PNG jaxtag writes, with matplotlib's headless backend (pods and CI have no display).

The functions take plain rows and arrays, not files, so the numbers drawn are the numbers tests check.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxtag.core import scoring  # noqa: E402


def _save(fig, path: str) -> None:
  """PNG bytes written through ``etils.epath``: ``path`` may be on ``gs://`` (a report of a remote run)."""
  import io
  from etils import epath
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=110, format="png", bbox_inches="tight")   # long tick labels are not cut off
  plt.close(fig)
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(buffer.getvalue())


def _plain_number(x: float, _pos=None) -> str:
  """A log-axis tick as a person writes it: 0.02, 0.5, 3, 2k, 1M (10^-4 below 0.001)."""
  if x <= 0:
    return ""
  if x >= 1e6:
    return f"{x / 1e6:g}M"
  if x >= 1e3:
    return f"{x / 1e3:g}k"
  if x >= 1e-3:
    return f"{x:g}"
  exponent = int(np.floor(np.log10(x) + 1e-9))
  mantissa = x / 10.0 ** exponent
  return (f"${mantissa:g}\\times10^{{{exponent}}}$" if abs(mantissa - 1) > 1e-6 else f"$10^{{{exponent}}}$")


def log_axis(ax, which: str = "x") -> None:
  """Log scale with readable ticks: labelled majors at 1-2-5 (or fewer, as the span of the data grows) as
  plain numbers, unlabelled minors. Matplotlib's default labels every minor tick of a sub-decade range in
  scientific notation, and on a narrow axis they run into each other ("2x10^3x10^-2...")."""
  from matplotlib import ticker
  axis = ax.xaxis if which == "x" else ax.yaxis
  (ax.set_xscale if which == "x" else ax.set_yscale)("log")
  lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
  decades = np.log10(hi / lo) if lo > 0 else 10.0
  subs = (1.0, 2.0, 3.0, 5.0) if decades < 1 else (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,) if decades <= 6 else None
  axis.set_major_locator(ticker.LogLocator(base=10, subs=subs) if subs else ticker.LogLocator(base=10, numticks=6))
  axis.set_major_formatter(ticker.FuncFormatter(_plain_number))
  axis.set_minor_locator(ticker.LogLocator(base=10, subs=np.arange(2, 10)))
  axis.set_minor_formatter(ticker.NullFormatter())


def label_points(ax, xs, ys, names, fontsize: int = 7) -> list:
  """Names next to their points, each moved up or down by a line until it overlaps no name placed before it
  (tags of similar prevalence and score otherwise print on top of each other). Returns the text objects."""
  fig = ax.figure
  renderer = fig.canvas.get_renderer()
  placed, texts = [], []
  for x, y, name in zip(xs, ys, names):
    for k in (0, 1, -1, 2, -2, 3, -3, 4, -4):
      text = ax.annotate(str(name), (x, y), xytext=(3, 2 + 1.3 * fontsize * k), textcoords="offset points",
                         fontsize=fontsize)
      box = text.get_window_extent(renderer).padded(3)
      if not any(box.overlaps(b) for b in placed):
        break
      text.remove()
    placed.append(box)
    texts.append(text)
  return texts


def per_tag_vs_prevalence(path: str, rows: list[dict]) -> None:
  """Per-tag ROC-AUC and PR-AUC against prevalence: rare tags are where PR-AUC collapses."""
  rows = [r for r in rows if np.isfinite(r["roc_auc"])]
  prev = np.array([r["prevalence"] for r in rows])
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, key, name in zip(axes, ("roc_auc", "pr_auc"), ("ROC-AUC", "PR-AUC")):
    ax.scatter(prev, [r[key] for r in rows], s=14)
    if key == "pr_auc":
      ax.plot(np.sort(prev), np.sort(prev), "k:", lw=1, label="random scorer")
      ax.legend(loc="lower right")
    log_axis(ax, "x")
    ax.set_xlabel("tag prevalence in split")
    ax.set_ylabel(name)
    label_points(ax, [r["prevalence"] for r in rows[:5]], [r[key] for r in rows[:5]], [r["tag"] for r in rows[:5]])
  _save(fig, path)


def pr_curves(path: str, targets, scores, tags, k: int = 6) -> None:
  """Precision-recall curves of the k most frequent tags (those with both classes)."""
  y = np.asarray(targets) >= scoring.POSITIVE_THRESHOLD
  n_pos = y.sum(axis=0)
  order = [t for t in np.argsort(-n_pos, kind="stable") if 0 < n_pos[t] < len(y)][:k]
  fig, ax = plt.subplots(figsize=(5.5, 4.5))
  for t in order:
    p, r, _ = scoring.precision_recall_curve(y[:, t], scores[:, t])
    ap = scoring.average_precision(y[:, t], scores[:, t])
    ax.step(r, p, where="post", label=f"{tags[t]} (AP {ap:.2f}, prev {n_pos[t] / len(y):.2f})")
  ax.set_xlabel("recall")
  ax.set_ylabel("precision")
  ax.set_ylim(0, 1.02)
  ax.legend(fontsize=7)
  _save(fig, path)


def scaling(path: str, rows: list[dict], fits: dict) -> None:
  """Each metric against training-set size, one line per model family, with the fit over log10(size)."""
  keys = (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("rmse", "sqrt(MSE)"))
  fig, axes = plt.subplots(1, 3, figsize=(13, 4))
  for ax, (key, name) in zip(axes, keys):
    for model in sorted({r["model"] for r in rows}):
      pts = sorted((r["n_train"], r[key]) for r in rows if r["model"] == model)
      x, y = np.array(pts, np.float64).T
      line = ax.plot(x, y, "o", label=model)[0]
      if (model, key) in fits:
        slope, icpt = fits[(model, key)]
        xs = np.geomspace(x.min(), x.max(), 20)
        ax.plot(xs, slope * np.log10(xs) + icpt, "--", color=line.get_color(), lw=1)
    log_axis(ax, "x")
    ax.set_xlabel("training songs")
    ax.set_ylabel(name)
  axes[0].legend(fontsize=8)
  _save(fig, path)


def popularity(path: str, tags, true_rate, pred_rate, k: int, label_top: int = 8) -> None:
  """How often each tag is in the top-k against how often it is true; above the diagonal = over-predicted."""
  fig, ax = plt.subplots(figsize=(5.5, 5))
  ax.scatter(true_rate, pred_rate, s=14)
  hi = max(float(np.max(true_rate)), float(np.max(pred_rate)), 1e-3)
  ax.plot([0, hi], [0, hi], "k:", lw=1)
  ax.set_xlabel("fraction of songs where the tag is true")
  ax.set_ylabel(f"fraction of songs with the tag in the model's top {k}")
  over = np.argsort(-(pred_rate - true_rate))[:label_top]
  label_points(ax, true_rate[over], pred_rate[over], [tags[t] for t in over])
  _save(fig, path)


def exclusive(path: str, pair_names: list[str], rates: dict) -> None:
  """Bar chart: per pair, how often each model scores both tags of an exclusive pair high."""
  fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(pair_names)), 4))
  width = 0.8 / max(len(rates), 1)
  for i, (model, values) in enumerate(rates.items()):
    ax.bar(np.arange(len(pair_names)) + i * width, values, width, label=model)
  names = [n.replace(" / ", " /\n") if len(n) > 18 else n for n in pair_names]   # long pairs on two lines
  ax.set_xticks(np.arange(len(pair_names)) + 0.4 - width / 2, names, rotation=30, ha="right", fontsize=7)
  ax.set_ylabel("rate both scored high, one true")
  ax.legend(fontsize=8)
  _save(fig, path)


def taggram(path: str, probs, tags, chunk_seconds: float, title: str = "", top: int = 20) -> None:
  """Per-chunk tag probabilities (musicnn's taggram) of the ``top`` tags by mean over the file."""
  probs = np.asarray(probs)
  order = np.argsort(-probs.mean(axis=0))[:top]
  fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(probs) + 3), 0.25 * len(order) + 1.5))
  im = ax.imshow(probs[:, order].T, aspect="auto", origin="upper", cmap="viridis", vmin=0, vmax=1,
                 extent=(0, len(probs) * chunk_seconds, len(order) - 0.5, -0.5))
  ax.set_yticks(range(len(order)), [str(tags[t]) for t in order], fontsize=7)
  ax.set_xlabel("time (s)")
  ax.set_title(title, fontsize=9)
  fig.colorbar(im, ax=ax, label="tag probability")
  _save(fig, path)


def robustness(path: str, rows: list[dict], clean: dict, title: str = "") -> None:
  """ROC-AUC and PR-AUC against each perturbation's strength (one panel per perturbation), the clean score
  as a dotted line: how fast a model degrades, and under which kind of change."""
  kinds = list(dict.fromkeys(r["kind"] for r in rows))
  fig, axes = plt.subplots(1, len(kinds), figsize=(3.3 * len(kinds), 3.4), squeeze=False)
  for ax, kind in zip(axes[0], kinds):
    sel = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r.get("kbps", r["strength"]))
    x = [r.get("kbps", r["strength"]) for r in sel]   # MP3: the measured bitrate
    for key, name, colour in (("roc_auc", "ROC-AUC", "C0"), ("pr_auc", "PR-AUC", "C1")):
      ax.plot(x, [r[key] for r in sel], "o-", color=colour, label=name)
      ax.axhline(clean[key], color=colour, ls=":", lw=1)
    ax.set_title(kind.replace("_", " "), fontsize=10)
    ax.set_xlabel("kbps" if "kbps" in sel[0] else sel[0]["unit"])
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("macro score (dotted: clean)")
  axes[0][0].legend(loc="lower left", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)
