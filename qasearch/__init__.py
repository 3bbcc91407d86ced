"""qasearch: extractive question answering served from a Redis Cluster.

This package is the shared core that ``gears`` (shard runtime), ``loaders``
(corpus and model loaders) and ``api`` (gateway) all build on: the settings,
the key schema, the partition map, the tensor codec and the model package format.
"""

__version__ = "0.1.0"
