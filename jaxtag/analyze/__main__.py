"""``python -m jaxtag.analyze SUBCOMMAND ...``: scaling, popularity, baseline, exclusive.

  scaling W1 W2 ...            metrics against training size, waveform vs spectrogram, seed-format table
  popularity W [--top_k=K]     top-k rate against true rate per tag; over-predicted tags; rank correlation
  baseline --config=C --workdir=WB   per-tag GBT on hand-crafted features, written as a run of its own
  exclusive W [WB ...] [--pairs="a:b" ...]   both tags of exclusive pairs scored high, side by side
  probe W [W2 ...] --config=C [--probe_model=logreg|mlp]   frozen-embedding probe per backbone on C's data
  robustness W [W2 ...] [--perturb=KIND:S1,S2 ...]   scores under time stretch, pitch shift, gain, noise, MP3
"""
import json
import os

from absl import app, flags
from ml_collections import config_flags


def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  config_flags.DEFINE_config_file("config", None, "Config of the data set (baseline and probe).")
  flags.DEFINE_string("workdir", None, "Output run directory of the baseline.")
  from jaxtag.core import choices
  flags.DEFINE_enum("split", "test", list(choices.SPLITS), "Split whose predictions are analysed.")
  flags.DEFINE_string("out", "", "Output directory (default: the first run's report/; scaling: ./scaling_report).")
  flags.register_validator("out", lambda v: not v or not os.path.isfile(v), "is a file; give a directory for the "
                           "analysis report")
  flags.DEFINE_integer("top_k", 0, "k of top-k (popularity: 0 = mean true tags per song; exclusive: 0 = 3).",
                       lower_bound=0)
  flags.DEFINE_float("threshold", 0.5, "exclusive: a score above this counts as high.")
  flags.DEFINE_multi_string("pairs", [], "exclusive: tag pairs as 'a:b' (repeatable); default: found automatically.")
  flags.DEFINE_float("min_prevalence", 0.02, "exclusive: automatic pairs need each tag in this fraction of train.")
  flags.DEFINE_integer("max_pairs", 10, "exclusive: at most this many automatic pairs.", lower_bound=1)
  flags.DEFINE_integer("max_iter", 100, "baseline: boosting iterations per tag.", lower_bound=1)
  flags.DEFINE_enum("probe_model", "logreg", ["logreg", "mlp"], "probe: per-tag logistic regression or an MLP.")
  flags.DEFINE_multi_string("perturb", [], "robustness: KIND[:S1,S2,...] (repeatable; default: every kind at "
                            "its default strengths): time_stretch, pitch_shift, gain, white_noise, mp3.")
  flags.DEFINE_bool("json", False, "Print the result as one JSON object.")


FLAGS = flags.FLAGS
COMMANDS = ("scaling", "popularity", "baseline", "exclusive", "probe", "robustness")


def dispatch(command: str, workdirs: list[str]) -> dict:
  """Runs one sub-command with the parsed flags; the result is what ``--json`` prints."""
  from jaxtag.analyze import baseline, exclusive, popularity, probe, robustness, scaling
  if command != "baseline" and not workdirs:
    raise app.UsageError(f"{command} needs at least one run directory")
  if command == "scaling":
    return scaling.run(workdirs, FLAGS.split, FLAGS.out or "scaling_report")
  if command == "popularity":
    return popularity.run(workdirs[0], FLAGS.split, FLAGS.top_k, FLAGS.out)
  if command == "probe":
    return probe.run(workdirs, _config(), FLAGS.probe_model)
  if command == "robustness":
    return robustness.run(workdirs, FLAGS.split, FLAGS.perturb, out=FLAGS.out)
  if command == "exclusive":
    return exclusive.run(workdirs, FLAGS.split, FLAGS.pairs, FLAGS.threshold, FLAGS.top_k or 3,
                         FLAGS.min_prevalence, FLAGS.max_pairs, FLAGS.out)
  if FLAGS.config is None or not FLAGS.workdir:
    raise app.UsageError("baseline needs --config and --workdir")
  return baseline.run(_config(), FLAGS.workdir, FLAGS.split, FLAGS.max_iter)


def _config():
  """``--config``, checked against the config schema (baseline and probe read its data set)."""
  from jaxtag.core import cli
  return None if FLAGS.config is None else cli.loaded_config(FLAGS)


def _summary(command: str, res: dict) -> str:
  if command == "scaling":
    return res["table"] + f"crossover train size (waveform = spectrogram): {res['crossover_train_size']}"
  if command == "popularity":
    over = ", ".join(o["tag"] for o in res["over_predicted"][:5])
    return f"top-{res['k']}: spearman {res['spearman']:.3f}; most over-predicted: {over}"
  if command == "probe":
    return res["table"]
  if command == "robustness":
    from jaxtag.analyze import robustness
    return "\n".join(robustness.markdown(r) + f"files: {r['files']}" for r in res.values())
  if command == "exclusive":
    lines = [f"pairs ({res['pair_source']}): {', '.join(res['pairs']) or 'none'}"]
    for m, rates in res["models"].items():
      both = [f"{r['both_in_top_k']:.3f}" for r in rates]
      lines.append(f"{m}: both in top-{res['k']}: {' '.join(both)}")
    return "\n".join(lines)
  return f"baseline: roc_auc {res['roc_auc']:.4f} pr_auc {res['pr_auc']:.4f} rmse {res['rmse']:.4f}"


def main(argv):
  if len(argv) < 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"usage: python -m jaxtag.analyze {{{','.join(COMMANDS)}}} [RUN_DIR ...] [flags]")
  res = dispatch(argv[1], argv[2:])
  print(json.dumps(res, default=str) if FLAGS.json else _summary(argv[1], res))


if __name__ == "__main__":
  from jaxtag.core import cli
  cli.run(main, define_flags, required=())
