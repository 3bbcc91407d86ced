"""Tooling that runs and operates a cluster: what ``qasearch cluster|workers|serve`` do.

``localcluster`` (with ``localnodes`` and ``nodewait``) runs a Redis Cluster on
loopback addresses; ``clusterform`` forms one from nodes started elsewhere;
``nodeacl`` and ``durability`` are the nodes' ACL and persistence settings;
``scaleout`` and ``slotmove`` add a master and move partitions to it; ``workers``
starts the shard workers' supervisors, ``gateway`` the gunicorn gateway.
"""
