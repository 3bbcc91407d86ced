#!/usr/bin/env bash
# The main job: install, start a Redis Cluster on loopback, push the QA model,
# load the sample corpus, start the shard workers and the gateway, show one real
# query, benchmark it beside its floor and a HF pipeline, run chaos events under
# traffic, load the SQuAD v2.0 dev half and score answer quality open-domain, write
# one report (results/<time>/report.md), and leave everything running.
#
#   ./bootstrap_benchmark.sh          set up, start, load, benchmark, report
#   ./bootstrap_benchmark.sh stop     stop every process this script started
#
# Environment: QASEARCH_READER (extractive-QA checkpoint, hub id or folder; default
# distilbert-base-cased-distilled-squad when the hub answers, else the trained reader
# shipped in models/minilm-squad), QASEARCH_BENCH_QUERIES (30), QASEARCH_EVAL_QUESTIONS
# (300 questions of the SQuAD v2.0 dev half, open domain), and every QASEARCH_* setting.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "stop" ]; then
    . .venv/bin/activate
    qasearch serve --stop || true
    qasearch workers stop || true
    qasearch cluster down
    exit 0
fi
if [ -n "${1:-}" ]; then
    echo "usage: $0 [stop]" >&2
    exit 2
fi

started=$(date +%s.%N)
step() { printf '\n==> %s\n' "$*"; }

step "installing (virtualenv, redis-server, torch==2.13.0, requirements)"
scripts/install.sh
. .venv/bin/activate

step "starting the Redis Cluster"
qasearch cluster up

hub_reader="distilbert-base-cased-distilled-squad"
step "pushing the QA model to every master"
if [ -n "${QASEARCH_READER:-}" ]; then
    qasearch model push "$QASEARCH_READER"
elif python -m loaders.hub_check "$hub_reader"; then
    qasearch model push "$hub_reader"
else
    echo "the model hub is unreachable: pushing the trained MiniLM reader that ships with"
    echo "qasearch (models/minilm-squad; its scores are in models/minilm-squad/MODEL_CARD.md)"
    qasearch model push
fi

step "loading the corpus: the sample, and the SQuAD v2.0 dev half (646 paragraphs) that the benchmark's baseline and the answer-quality eval ask"
qasearch load data/sample/corpus.jsonl --format jsonl
qasearch load data/squad/dev-v2.0-half.json --format squad

step "starting the shard workers (one per node: a worker beside each master, a standby beside each replica)"
qasearch workers start --wait 600

step "starting the gateway"
qasearch serve --detach

port="${QASEARCH_API_PORT:-8080}"
question="Who first isolated adenoviruses in 1953?"
step "one real query"
echo "curl -s -X POST http://127.0.0.1:$port/qasearch -H 'Content-Type: application/json' \\"
echo "     -d '{\"search\": \"$question\", \"num_results\": 3}'"
curl -s -X POST "http://127.0.0.1:$port/qasearch" -H 'Content-Type: application/json' \
    ${QASEARCH_API_KEY:+-H "X-API-Key: $QASEARCH_API_KEY"} \
    -d "{\"search\": \"$question\", \"num_results\": 3}" | python -m json.tool

results="results/$(date +%Y%m%d-%H%M%S)"
step "benchmark: /qasearch (caches off) beside its floor, a HF pipeline and the twenty-line alternative per K, and the answer cache"
qasearch bench --queries "${QASEARCH_BENCH_QUERIES:-30}" --output "$results" \
    --eval-file data/squad/dev-v2.0-half.json --baseline-k 1,3,5,10,20 \
    --baseline-questions "${QASEARCH_BASELINE_QUESTIONS:-30}"

step "chaos: a model pushed right after the benchmark (then one that changes the embedder), a worker and a master killed with kill -9, each under steady queries (10 s deadlines)"
qasearch chaos --events model-push,embedder-push,worker-kill,master-kill --timeout-ms 10000 \
    --json "$results/chaos.json"

step "answer quality: ${QASEARCH_EVAL_QUESTIONS:-300} questions of the SQuAD v2.0 dev half through /qasearch (caches off)"
qasearch eval data/squad/dev-v2.0-half.json --mode open --sample "${QASEARCH_EVAL_QUESTIONS:-300}" \
    --wait 900 --output "$results/eval"

step "report: performance, answer cache, chaos and answer quality in one folder"
qasearch bench --report "$results"
echo "open $results/report.md (plots beside it)"

elapsed=$(python -c "import time; print(f'{time.time() - $started:.1f}')")
step "done in ${elapsed}s; everything is still running"
qasearch cluster status
qasearch workers status
echo
echo "ask:   qasearch ask 'your question'   or   curl -X POST http://127.0.0.1:$port/qasearch ..."
echo "page:  http://127.0.0.1:$port/   (ask in a browser)"
echo "stop:  ./bootstrap_benchmark.sh stop"
