"""Library tagging (``python -m jaxtag.tag``): streamed inputs, decode workers, batched device inference,
atomic resumable output shards. ``jaxtag/tag.py`` wires these together."""
