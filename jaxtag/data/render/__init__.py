"""The rendered corpus: General-MIDI SoundFont renderings of music21 pieces and of composed MTT-like styles
(compose -> render -> voice -> mix -> label; ``corpus`` drives it). See docs/design.md (Data, "Rendered corpus")."""
