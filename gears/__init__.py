"""Shard-side runtime: one worker process per master node, attached to that node only."""
