"""Command-line tools that are not part of training (weight import)."""
