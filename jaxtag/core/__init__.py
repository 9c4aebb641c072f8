"""What every stage shares: user errors (``errors``), config choices (``choices``), the command-line style
(``cli``), console logging (``logs``), local and ``gs://`` paths (``paths``, ``remote``), processes
(``distributed``), the mesh (``sharding``), tagging metrics (``scoring``) and PNG plots (``plots``).

Imports nothing else of jaxtag: every other folder may import it.
"""
