"""Clean attributes -> graded targets and MTT-like noisy tags, in MagnaTagATune's own tag names.

Like ``jaxtag/data/generate.py``: a part more than ``AUDIBLE_DB`` below the loudest loses its tag (quiet
instruments go unannotated), each true attribute is emitted with probability < 1 and sometimes through a
synonym (MTT's "woman" / "female vocal" / "female voice"), popularity is skewed by the style priors and
emission rates, and a few false tags are sprinkled in. ``targets`` keep the graded, noise-free values.
"""
from __future__ import annotations

import numpy as np

from jaxtag.data.generate import shared_degrees
from jaxtag.data.render import compose, scores

AUDIBLE_DB = 14.0
SYNONYM_RATE = 0.4
FALSE_TAG_RATE = 0.004
INSTRUMENTS = ("guitar", "piano", "harpsichord", "organ", "strings", "violin", "cello", "flute", "synth", "sitar",
               "bass", "bells", "harp", "trumpet", "sax")
# clean attribute -> (emission probability, surface tags; the first is canonical, the others rarer synonyms)
ATTRIBUTES = {
  **{s: (0.8, (s,)) for s in compose.STYLES},
  "classical": (0.8, ("classical", "classic")), "techno": (0.8, ("techno", "dance")),
  "ambient": (0.8, ("ambient", "new age")),
  **{i: (0.6, (i,)) for i in INSTRUMENTS},
  "choir": (0.7, ("choir", "choral")),
  "drums": (0.9, ("drums", "beat", "beats")),
  "female": (0.6, ("female", "woman", "female vocal", "female voice")),
  "male": (0.6, ("male", "man", "male vocal", "male voice")),
  "vocal": (0.6, ("vocal", "vocals", "singing", "voice")),
  "no vocal": (0.75, ("no vocal", "no vocals", "no voice")),
  "fast": (0.5, ("fast",)), "slow": (0.5, ("slow",)), "loud": (0.4, ("loud",)), "quiet": (0.45, ("quiet", "soft")),
  "major": (0.3, ("major",)), "minor": (0.3, ("minor",)), "electronic": (0.5, ("electronic",)),
  "solo": (0.3, ("solo",)),
  **{p: (0.5, (p,)) for p in dict.fromkeys(v[0] for v in scores.COMPOSERS.values())},
  **{c: (0.4, (c,)) for c in scores.COMPOSERS},
}
TAGS = tuple(dict.fromkeys(t for _, surfaces in ATTRIBUTES.values() for t in surfaces))
DEGREES = ("fast", "slow", "loud", "quiet")   # graded: a clip carries the tag when its degree > 0.5


def levels(style: str, parts: list, gains_db: np.ndarray, bpm: float, mode: str, rms_db: float,
           composer: str = "") -> dict[str, float]:
  """Graded clean attributes in [0, 1]: style, each part's audibility, tempo, loudness, mode, voice."""
  level = {s: float(s == style) for s in (*compose.STYLES, "classical")}
  top = float(np.max(gains_db))
  audible = [float(np.clip((g - (top - AUDIBLE_DB)) / AUDIBLE_DB, 0, 1)) for g in gains_db]
  for part, a in zip(parts, audible):
    level[part.attr] = max(level.get(part.attr, 0.0), a)
    if part.voice:
      level[part.voice] = max(level.get(part.voice, 0.0), a)
  level["strings"] = max(level.get(k, 0.0) for k in ("strings", "violin", "cello"))
  level["vocal"] = max(level.get("vocal", 0.0), level.get("choir", 0.0))
  shared_degrees(level, bpm, rms_db, mode)
  solo = [p for p, a in zip(parts, audible) if a > 0]   # one audible player (a choir or string section is not)
  level["solo"] = float(len(solo) == 1 and solo[0].attr not in ("choir", "strings"))
  if composer:
    level[composer] = 1.0
    level[scores.COMPOSERS[composer][0]] = 1.0
  return {a: v for a, v in level.items() if a in ATTRIBUTES and v > 0}


def tags_and_targets(level: dict[str, float], rng: np.random.Generator) -> tuple[list, dict, list]:
  """(noisy tags, graded targets, clean attributes) of one clip."""
  clean = sorted(a for a, v in level.items() if v > 0.5 or a not in DEGREES)
  tags = set()
  for a in clean:
    p, surfaces = ATTRIBUTES[a]
    tags.update(s for j, s in enumerate(surfaces) if rng.random() < p * (1.0 if j == 0 else SYNONYM_RATE))
  tags.update(t for t in TAGS if rng.random() < FALSE_TAG_RATE)
  targets = {s: round(v, 4) for a, v in level.items() for s in ATTRIBUTES[a][1]}
  return sorted(tags, key=TAGS.index), targets, clean
