"""The core every qasearch process imports: workers, gateway, loaders and tools alike.

The settings (``settings``, ``credentials``), the key schema (``keys``), the partition
map (``partitions``), the tensor codec (``codec``), the model package and the model
loaded from it (``modelpkg``, ``models``, ``specials``), the cluster's topology
(``topology``, ``clusternodes``, ``hostlayout``), the workers' heartbeats and standby
channel (``heartbeat``, ``standbywire``), process tracking (``procs``), and the small
shared vocabularies (``errors``, ``questions``, ``apiclient``, ``monitoring``).

Nothing here imports the tooling (:mod:`qasearch.cluster`), measurement
(:mod:`qasearch.bench`), training, the commands, or ``gears``/``api``/``loaders``.
"""
