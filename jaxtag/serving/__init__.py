"""Serving a trained run: the one inference path (``inference``: chunking, micro-batches, the preprocessing
contract), and what is built on it: ``predict`` (your files, a taggram), ``tag`` (a whole library, streamed into
resumable shards; ``tag_inputs``, ``tag_worker``, ``tag_shards``) and ``export``
(ONNX, lowered from the model's traced inference function by ``onnx_lowering``).

May import ``core``, ``data``, ``models`` and ``training`` (the train state and checkpoints).
"""
