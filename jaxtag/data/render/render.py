"""GM parts -> audio: each part is written as a one-track MIDI file and rendered through a SoundFont.

Renderer: ``midirenderer`` (MIT; a Rust SoundFont synthesiser with manylinux wheels: installs with pip alone,
renders 48 kHz stereo WAV about 100x real time here). SoundFont: ``TimGM6mb.sf2`` shipped inside the
``pretty_midi`` wheel (GPL-2, 6 MB, a General-MIDI set of sampled instruments and kits). Parts are rendered
together, each at a calibrated channel volume, so each part's level (its audibility, a graded target) is known.
"""
from __future__ import annotations

import functools
import io
import os

import mido
import numpy as np
import soundfile as sf

RENDER_SR = 48000
TICKS = 480            # per beat, at the fixed 120 bpm of the written file: 960 ticks per second


def default_soundfonts() -> tuple[str, ...]:
  import pretty_midi
  return (os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2"),)


@functools.lru_cache(maxsize=8)
def soundfont_bytes(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def midi_bytes(parts, volumes=None) -> bytes:
  """One track per part, each on its own channel (9 for drums) with a program change and a CC7 volume,
  then note on/off events in time order. ``parts``: [(program, is_drum, [(pitch, start s, end s, vel)])]."""
  f = mido.MidiFile(ticks_per_beat=TICKS)
  melodic = iter(c for c in range(16) if c != 9)
  for k, (program, is_drum, notes) in enumerate(parts):
    channel = 9 if is_drum else next(melodic)
    events = []
    for pitch, start, end, vel in notes:
      start = max(0.0, start)
      events.append((int(round(start * 2 * TICKS)), 1, int(pitch), int(vel)))
      events.append((int(round(max(end, start + 0.02) * 2 * TICKS)), 0, int(pitch), 0))
    events.sort()
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0),
                            mido.Message("program_change", program=program, channel=channel, time=0),
                            mido.Message("control_change", control=7, channel=channel, time=0,
                                         value=127 if volumes is None else int(volumes[k]))])
    now = 0
    for tick, on, pitch, vel in events:
      kind = "note_on" if on else "note_off"
      track.append(mido.Message(kind, note=pitch, velocity=vel, channel=channel, time=tick - now))
      now = tick
    f.tracks.append(track)
  buf = io.BytesIO()
  f.save(file=buf)
  return buf.getvalue()


def _render(soundfont: str, midi: bytes, n: int) -> np.ndarray:
  import midirenderer
  wav = midirenderer.render_wave_from(soundfont_bytes(soundfont), midi)
  y, sr = sf.read(io.BytesIO(bytes(wav)), dtype="float32", always_2d=True)
  if sr != RENDER_SR:
    raise RuntimeError(f"midirenderer returned {sr} Hz, expected {RENDER_SR}")
  y = (y[:n, 0] + y[:n, 1]) * 0.5
  return np.pad(y, (0, n - len(y)))


@functools.lru_cache(maxsize=1024)
def loudness_db(soundfont: str, program: int, is_drum: bool) -> float:
  """RMS (dB) of a reference note (C4 or a snare) at full volume: programs differ by up to ~9 dB."""
  notes = [(38 if is_drum else 60, 0.0, 0.5, 100)] * 1
  y = _render(soundfont, midi_bytes([(program, is_drum, notes)]), RENDER_SR // 2)
  return float(20 * np.log10(np.sqrt(np.mean(y**2)) + 1e-9))


def render_parts(parts, gains_db, seconds: float, soundfont: str) -> np.ndarray:
  """All parts in one render, mono float32 at ``RENDER_SR``, exactly ``seconds`` long.

  Each part's channel volume (CC7, 40*log10(v/127) dB in this synthesiser, measured) is set so that its
  level relative to the others is ``gains_db`` after removing the program's own loudness.
  """
  eff = np.array([g - loudness_db(soundfont, p.program, p.is_drum) for p, g in zip(parts, gains_db)])
  eff -= eff.max()
  volumes = np.clip(np.round(127 * 10 ** (eff / 40)), 1, 127)
  midi = midi_bytes([(p.program, p.is_drum, p.notes) for p in parts], volumes)
  return _render(soundfont, midi, int(round(seconds * RENDER_SR)))
