"""qasearch: extractive question answering served from a Redis Cluster.

The shared package, in three parts and the command line:

* :mod:`qasearch.core`     what every process imports: settings, key schema, partition
  map, tensor codec, model package, loaded model, topology, heartbeats
* :mod:`qasearch.cluster`  tooling that runs and operates a cluster: local nodes,
  cluster forming, scale-out, worker supervisors, the gateway process
* :mod:`qasearch.bench`    measurement: the benchmark, answer-quality evaluation,
  chaos events and the soak
* :mod:`qasearch.training` fine-tuning the reader
* :mod:`qasearch.commands` the ``qasearch`` subcommands (:mod:`qasearch.cli`)

``gears`` (shard runtime), ``api`` (gateway) and ``loaders`` (corpus and model
loaders) import only :mod:`qasearch.core` (tests/test_layering.py holds them to it).
"""

__version__ = "0.1.0"
