"""Procedural composition in MTT-like styles, as General-MIDI parts (notes only; no audio here).

A ``Part`` is one GM instrument playing notes (pitch, start s, end s, velocity). The styles, their GM
instrument families and drum patterns are declared once in tables, so the label code can name what
is audible. An artist (see ``corpus.make_artists``) fixes a style's concrete choices: programs per role,
tempo centre, drum kit; a clip varies key, mode, tempo jitter, progression and the notes.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Part:
  attr: str                     # clean attribute it makes audible: "guitar", "vocal", "drums", ...
  program: int                  # GM program (0-127); the drum kit's program when is_drum
  notes: list                   # [(midi pitch, start s, end s, velocity 1-127)]
  is_drum: bool = False
  voice: str = ""               # "female" / "male" for the vocal part


# family -> (clean attribute, GM programs an artist picks one of, pitch range)
FAMILIES = {
  "piano": ("piano", (0, 1, 2), (40, 88)),
  "epiano": ("piano", (4, 5), (40, 84)),
  "harpsichord": ("harpsichord", (6,), (41, 84)),
  "organ": ("organ", (16, 17, 19), (36, 84)),
  "guitar": ("guitar", (24, 25), (40, 79)),
  "eguitar": ("guitar", (26, 27, 28), (40, 81)),
  "dguitar": ("guitar", (29, 30), (40, 76)),
  "bass": ("bass", (32, 33, 34), (28, 52)),
  "synthbass": ("bass", (38, 39), (28, 55)),
  "violin": ("violin", (40,), (55, 91)),
  "viola": ("strings", (41,), (48, 79)),
  "cello": ("cello", (42,), (36, 64)),
  "harp": ("harp", (46,), (36, 91)),
  "strings": ("strings", (48, 49), (40, 84)),
  "choir": ("choir", (52,), (45, 76)),
  "trumpet": ("trumpet", (56,), (55, 82)),
  "sax": ("sax", (65, 66), (49, 80)),
  "flute": ("flute", (73,), (60, 93)),
  "synthlead": ("synth", (80, 81, 87), (48, 88)),
  "synthpad": ("synth", (88, 89, 90, 91, 95), (40, 84)),
  "bells": ("bells", (8, 11, 14), (60, 96)),
  "sitar": ("sitar", (104,), (48, 79)),
  "voice": ("vocal", (53, 54), (45, 72)),
}
VOICE_RANGES = {"male": (45, 60), "female": (57, 74)}

# style: prior, bpm range, P(drums), P(vocal), P(minor), role -> families, drum pattern, GM kits, distortion
STYLES = {
  "rock": (0.22, (95, 150), 0.95, 0.55, 0.5,
           {"melody": ("eguitar", "dguitar", "piano", "organ"), "chords": ("dguitar", "eguitar", "organ", "piano"),
            "bass": ("bass",)}, "backbeat", (0, 16), True),
  "pop": (0.15, (90, 128), 0.85, 0.75, 0.3,
          {"melody": ("piano", "synthlead", "guitar", "bells", "epiano"),
           "chords": ("piano", "guitar", "synthpad", "strings", "epiano"), "bass": ("bass", "synthbass")},
          "backbeat", (0, 24), False),
  "techno": (0.12, (120, 145), 1.0, 0.1, 0.6,
             {"melody": ("synthlead", "bells"), "chords": ("synthpad", "synthlead"), "bass": ("synthbass",)},
             "four", (24, 25), False),
  "ambient": (0.09, (55, 90), 0.2, 0.15, 0.5,
              {"melody": ("synthpad", "flute", "bells", "harp", "piano"), "chords": ("synthpad", "strings"),
               "bass": ("synthbass", "cello")}, "half", (24,), False),
  "country": (0.07, (85, 135), 0.75, 0.65, 0.15,
              {"melody": ("violin", "guitar"), "chords": ("guitar", "piano"), "bass": ("bass",)},
              "backbeat", (0, 40), False),
  "indian": (0.05, (70, 120), 0.85, 0.35, 0.6,
             {"melody": ("sitar", "flute"), "chords": ("sitar",), "bass": ()}, "tabla", (0,), False),
  "metal": (0.05, (110, 180), 1.0, 0.5, 0.85,
            {"melody": ("dguitar",), "chords": ("dguitar",), "bass": ("bass",)}, "double", (16, 0), True),
  "jazz": (0.04, (80, 180), 0.8, 0.3, 0.5,
           {"melody": ("sax", "trumpet", "piano"), "chords": ("piano", "epiano", "guitar"), "bass": ("bass",)},
           "swing", (40, 32, 0), False),
}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (0, 0, 3, 4), (5, 3, 0, 4))
KICK, SNARE, HAT, OPEN_HAT, RIDE, CRASH, CLAP = 36, 38, 42, 46, 51, 49, 39
PATTERNS = {  # 16 steps per bar: GM drum note -> steps
  "backbeat": {KICK: (0, 8, 10), SNARE: (4, 12), HAT: tuple(range(0, 16, 2))},
  "four": {KICK: (0, 4, 8, 12), CLAP: (4, 12), HAT: (2, 6, 10, 14), OPEN_HAT: (6, 14)},
  "half": {KICK: (0,), SNARE: (8,), HAT: (0, 4, 8, 12)},
  "tabla": {60: (0, 3, 6, 10, 11, 14), 61: (2, 8, 13), 64: (0, 8)},
  "double": {KICK: tuple(range(16)), SNARE: (4, 12), CRASH: (0,), HAT: tuple(range(0, 16, 2))},
  "swing": {RIDE: (0, 4, 7, 8, 12, 15), KICK: (0,), 44: (4, 12)},
}


def fit(midi: int, lo: int, hi: int) -> int:
  while midi < lo:
    midi += 12
  while midi > hi:
    midi -= 12
  return midi


def melody(rng, seconds, beat, scale, root, lo, hi, slow=1.0) -> list:
  """A random walk on the scale with mixed note lengths and rests."""
  notes, t, pos = [], 0.0, int(rng.integers(7, 14))
  lengths = np.array([0.5, 1.0, 2.0]) * beat * slow
  while t < seconds:
    dur = float(lengths[rng.choice(3, p=(0.4, 0.4, 0.2))])
    pos = int(np.clip(pos + rng.integers(-2, 3), 0, 20))
    if rng.random() > 0.12:
      m = fit(root + 12 + scale[pos % 7] + 12 * (pos // 7), lo, hi)
      notes.append((m, t, t + dur * 0.92, int(rng.integers(70, 115))))
    t += dur
  return notes


def chords(rng, seconds, beat, scale, root, prog, lo, hi, power: bool) -> list:
  """Held, arpeggiated or (distorted guitars) eighth-note power chords, one chord per bar."""
  notes, bar = [], 4 * beat
  arp = (not power) and rng.random() < 0.4
  for b in range(int(np.ceil(seconds / bar))):
    deg = prog[b % len(prog)]
    if power:
      base = fit(root + scale[deg % 7], lo, lo + 12)
      for s in range(8):
        t = b * bar + s * beat / 2
        notes += [(base, t, t + beat * 0.45, 100), (base + 7, t, t + beat * 0.45, 95)]
      continue
    tones = [fit(root + 12 + scale[(deg + j) % 7] + 12 * ((deg + j) // 7), lo, hi) for j in (0, 2, 4)]
    if arp:
      for s in range(8):
        t = b * bar + s * beat / 2
        notes.append((tones[s % 3], t, t + beat / 2 * 0.95, int(rng.integers(65, 100))))
    else:
      notes += [(m, b * bar, b * bar + bar * 0.95, 75) for m in tones]
  return notes


def bassline(rng, seconds, beat, scale, root, prog, lo, hi) -> list:
  step = beat if rng.random() < 0.6 else 2 * beat
  bar = 4 * beat
  return [(fit(root - 12 + scale[prog[int(k * step / bar) % len(prog)] % 7], lo, hi), k * step,
           k * step + step * 0.9, int(rng.integers(85, 115))) for k in range(int(seconds / step) + 1)]


def drums(rng, seconds, beat, pattern) -> list:
  notes, sixteenth = [], beat / 4
  for b in range(int(np.ceil(seconds / (16 * sixteenth)))):
    for pitch, steps in PATTERNS[pattern].items():
      for s in steps:
        if pattern == "tabla" and rng.random() < 0.3:
          continue
        t = (16 * b + s) * sixteenth + abs(rng.normal(0, 0.006))
        notes.append((pitch, t, t + 0.1, int(rng.integers(70, 120) * (0.7 if pitch in (HAT, RIDE) else 1))))
  return notes


def compose(artist: dict, rng: np.random.Generator, seconds: float) -> tuple[list[Part], dict]:
  """The parts of one clip by ``artist`` (a composed-style artist) and its facts (bpm, mode, key)."""
  style = artist["style"]
  _, _, p_drums, p_vocal, p_minor, _, pattern, _, power = STYLES[style]
  bpm = float(np.clip(artist["bpm"] * rng.uniform(0.92, 1.08), 50, 190))
  mode = "minor" if rng.random() < p_minor else "major"
  beat, root, scale = 60.0 / bpm, int(rng.integers(45, 57)), SCALES[mode]
  prog = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
  parts = []
  if rng.random() < p_vocal:
    lo, hi = VOICE_RANGES[artist["voice"]]
    parts.append(Part("vocal", artist["programs"]["voice"], melody(rng, seconds, beat, scale, root, lo, hi, 1.6),
                      voice=artist["voice"]))
  roles = [r for r in ("melody", "chords", "bass", "melody2")[: int(rng.integers(1, 5))]
           if artist["programs"].get(r) is not None]
  for role in roles:
    fam = artist["families"][role]
    attr, _, (lo, hi) = FAMILIES[fam]
    prog_no = artist["programs"][role]
    if role.startswith("melody"):   # ambient melodies move in long, sparse notes
      notes = melody(rng, seconds, beat, scale, root, lo, hi, 2.5 if style == "ambient" else 1.0)
    elif role == "chords":
      notes = chords(rng, seconds, beat, scale, root, prog, lo, hi, power and fam == "dguitar")
    else:
      notes = bassline(rng, seconds, beat, scale, root, prog, lo, hi)
    parts.append(Part(attr, prog_no, notes))
  if rng.random() < p_drums:
    parts.append(Part("drums", artist["kit"], drums(rng, seconds, beat, pattern), is_drum=True))
  return parts, {"bpm": bpm, "mode": mode, "root": root}


def new_artist(rng: np.random.Generator, style: str) -> dict:
  """A composed-style artist: concrete families and GM programs per role, tempo centre, voice, kit."""
  _, (lo, hi), _, _, _, roles, _, kits, _ = STYLES[style]
  families, programs = {}, {}
  for role in ("melody", "chords", "bass", "melody2"):
    pool = roles.get("melody" if role == "melody2" else role, ())
    if not pool:
      programs[role] = None
      continue
    fam = pool[rng.integers(len(pool))]
    families[role], programs[role] = fam, int(rng.choice(FAMILIES[fam][1]))
  programs["voice"] = int(rng.choice(FAMILIES["voice"][1]))
  return {"kind": "composed", "style": style, "families": families, "programs": programs,
          "bpm": float(rng.uniform(lo, hi)), "voice": ("female", "male")[rng.integers(2)],
          "kit": int(kits[rng.integers(len(kits))])}
