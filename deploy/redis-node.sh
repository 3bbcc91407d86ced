#!/bin/sh
# One Redis Cluster node of docker-compose.yml, configured as `qasearch cluster up`
# configures its local nodes (qasearch/cluster/localnodes.py): cluster mode, key-miss
# events (notify-keyspace-events Em) in the config file so a promoted replica has
# them too, AOF, full coverage not required, and an ACL user whose password comes
# from the environment only (QASEARCH_REDIS_PASSWORD) and is written to a private
# file in the node's volume, never onto a command line. The default user is on, with
# every permission, behind the digest of a random password nobody holds (new on every
# start): Redis 7.0 replays the AOF's MULTI/EXEC blocks as the default user and refuses
# them if it lacks permissions, dropping data on restart (qasearch/cluster/nodeacl.py says more);
# unauthenticated clients still get NOAUTH.
set -eu
: "${QASEARCH_REDIS_PASSWORD:?QASEARCH_REDIS_PASSWORD must be set}"
user="${QASEARCH_REDIS_USERNAME:-qasearch}"
name="${QASEARCH_NODE_NAME:?QASEARCH_NODE_NAME must be set (the service name)}"
# a port of its own per node, as `qasearch cluster up` gives them: pid and metrics target
# files in the workers' shared run volume are named by node port
port="${QASEARCH_NODE_PORT:-6379}"
digest="$(printf '%s' "$QASEARCH_REDIS_PASSWORD" | sha256sum | cut -d' ' -f1)"
unheld="$(head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1)"
umask 077
cat > /data/redis.conf <<CONF
port $port
# inside the compose network only (docker-compose.yml publishes no Redis port); on a
# real host, QASEARCH_NODE_BIND names its private address
bind ${QASEARCH_NODE_BIND:-0.0.0.0}
protected-mode yes
dir /data
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 2000
cluster-announce-hostname $name
cluster-preferred-endpoint-type hostname
appendonly yes
appendfsync everysec
save ""
notify-keyspace-events Em
repl-diskless-sync yes
repl-diskless-sync-delay 0
client-output-buffer-limit replica 1gb 512mb 60
cluster-require-full-coverage no
user default on resetpass #$unheld ~* &* +@all
user $user on #$digest ~* &* +@all
masteruser $user
masterauth "$QASEARCH_REDIS_PASSWORD"
CONF
exec docker-entrypoint.sh redis-server /data/redis.conf
