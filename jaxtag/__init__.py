"""jaxtag: music auto-tagging at scale in JAX/Flax (waveform vs spectrogram front-ends, one back-end)."""
__version__ = "0.1.0"
