"""Importers of outside weights (the authors' musicnn) as ordinary jaxtag run directories. May import every
other folder."""
