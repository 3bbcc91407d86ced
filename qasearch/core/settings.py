"""Every tunable of qasearch, in one place.

Each setting has a default and can be overridden by an environment variable
named ``QASEARCH_<FIELD NAME IN CAPITALS>`` (for example ``QASEARCH_TOP_K=3``).
Command-line flags, where they exist, override the environment.
Secrets (the Redis password, the gateway API key) are read from the environment
only, or, for a password ``qasearch cluster up`` generated, from its private file
outside the repository (:mod:`qasearch.core.credentials`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from qasearch.core import credentials, no_answer

ENV_PREFIX = "QASEARCH_"
FUSIONS = ("weighted", "rrf", "dense", "lexical")


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]  # qasearch/core/settings.py


@dataclass(frozen=True)
class Settings:
    # --- cluster (qasearch cluster up) --------------------------------------
    host: str = "127.0.0.1"
    # several hosts, comma-separated: master m on host m mod H, its replicas on the hosts
    # after it (qasearch/core/hostlayout.py); "" = every node on `host`
    hosts: str = ""
    base_port: int = 7000
    masters: int = 3
    replicas_per_master: int = 1
    data_dir: str = str(_repo_root() / "var" / "cluster")
    # --- where clients connect ----------------------------------------------
    redis_url: str = ""  # defaults to redis://<host>:<base_port>
    redis_username: str = credentials.DEFAULT_USERNAME  # the ACL user of every node
    redis_password: str = field(default="", repr=False)  # env, else the generated file
    secrets_dir: str = ""  # generated secrets; "" = $XDG_CONFIG_HOME/qasearch
    # --- corpus ---------------------------------------------------------------
    partitions_per_master: int = 8
    max_passage_tokens: int = 200
    max_record_bytes: int = 16 * 1024 * 1024  # a JSONL line or CSV field; bounds memory
    max_file_bytes: int = 1024 * 1024 * 1024  # a file read whole (SQuAD, CORD-19 JSON, text)
    # --- retrieval (docs/architecture.md, "Two phases") ------------------------
    # passages read per question, over the whole corpus (the global top-K of phase 2);
    # 3, 0.5 and 0.5 below are chosen by measured recall and F1 (docs/benchmark.md)
    top_k: int = 3
    # candidates each shard returns in phase 1, by dense and by BM25 score each (at
    # least top_k); 20 lets `qasearch eval` report recall@20 of each
    retrieve_depth: int = 20
    fusion: str = "weighted"  # weighted | rrf | dense | lexical (api/fusion.py)
    lexical_weight: float = 0.5  # BM25's share of the weighted retrieval score
    rrf_k: int = 60  # reciprocal-rank fusion's constant
    # the reader's share of an answer's score, the rest its passage's retrieval score
    answer_weight: float = 0.5
    # the share of a request's time left that phase 1 may take (api/search.py)
    retrieve_share: float = 0.5
    # --- reader -----------------------------------------------------------------
    max_seq_len: int = 384
    doc_stride: int = 128
    max_answer_len: int = 15
    # the pipeline's handle_impossible_answer: a passage whose "no answer" score beats
    # every span gives no answer (for readers trained on SQuAD 2.0-style data)
    handle_impossible_answer: bool = False
    # the gateway's "no answer" threshold on log(null) - log(best span) (qasearch/core/
    # no_answer.py): "" = the served reader's own, chosen on a dev file (0 if it has none)
    no_answer_threshold: str = ""
    max_question_tokens: int = 64
    torch_threads: int = 1
    max_batch_size: int = 8
    max_batch_wait_ms: float = 2.0
    # a batch is padded to its longest window rounded up to this (fixed length buckets);
    # 16 costs ~5% over tight padding, the old 64-token buckets cost ~29% (docs/benchmark.md)
    length_bucket_tokens: int = 16
    # added to the nice value of a worker's background thread (model loads, index
    # builds, ingest), so that a model swap does not push queries past their deadline
    background_nice: int = 10
    # a worker beside every replica too (a standby: model loaded, indexes built from the
    # replica's data), so a promoted replica is served at once instead of after a model
    # load; off: replicas get a worker only once they are promoted
    standby_workers: bool = True
    # --- caches ---------------------------------------------------------------
    answer_ttl_s: int = 86400
    response_ttl_s: int = 300
    # --- gateway --------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_workers: int = 2
    deadline_ms: int = 10000
    max_num_results: int = 100
    max_question_chars: int = 1000
    max_inflight: int = 64
    max_body_bytes: int = 64 * 1024  # larger request bodies get 413
    max_top_k: int = 50
    max_timeout_ms: int = 120_000
    # a master whose reply has not come after this long is also asked through its
    # replica's standby worker (gears/standby.py), whichever answers first counts; a
    # master that cannot be reached at all is asked there at once. 0: only then.
    standby_after_ms: int = 1000
    api_key: str = field(default="", repr=False)  # env only; "" = no key required
    # --- metrics (Prometheus) ---------------------------------------------------
    metrics_host: str = "127.0.0.1"  # where each worker's /metrics listens
    worker_metrics_port: int = 0  # 0: kernel's pick; else this + (node port - base_port)
    metrics_advertise_host: str = ""  # host Prometheus scrapes; "" = metrics_host/api_host
    metrics_scrape_interval_s: float = 5.0  # in configs written by `qasearch prometheus-config`
    # --- process bookkeeping --------------------------------------------------
    run_dir: str = str(_repo_root() / "var" / "run")

    @property
    def startup_url(self) -> str:
        return self.redis_url or f"redis://{self.host}:{self.base_port}"

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes`` applied; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _coerce(raw: str, default: object) -> object:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from defaults overridden by ``QASEARCH_*`` environment variables."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    overrides: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is None or raw == "":
            continue
        try:
            overrides[f.name] = _coerce(raw, getattr(defaults, f.name))
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: {exc}") from None
    loaded = dataclasses.replace(defaults, **overrides)
    if loaded.fusion not in FUSIONS:
        raise ValueError(f"{ENV_PREFIX}FUSION={loaded.fusion!r}: one of {', '.join(FUSIONS)}")
    if loaded.no_answer_threshold.strip():
        no_answer.check_threshold(loaded.no_answer_threshold, f"{ENV_PREFIX}NO_ANSWER_THRESHOLD")
    if not loaded.redis_password:
        stored = credentials.stored_password(loaded.data_dir, loaded.secrets_dir, env)
        loaded = dataclasses.replace(loaded, redis_password=stored)
    return loaded


def to_environ(settings: Settings) -> dict[str, str]:
    """``QASEARCH_*`` variables that make :func:`load_settings` return ``settings`` in a child."""
    return {
        ENV_PREFIX + f.name.upper(): str(getattr(settings, f.name))
        for f in fields(Settings)
    }
