"""One benchmark run: the system, its floor and the usual alternative, side by side.

Same corpus (the one loaded), same questions, same model (the package the
cluster serves), same machine, in one process run:

a. end-to-end ``POST /qasearch`` with every cache bypassed: latency at c=1, then
   saturated throughput at each concurrency level;
b. the floor: the same embedder and reader forward passes in-process
   (:mod:`qasearch.bench.floor`), latency and best-case throughput;
c. a warm ``transformers`` QA pipeline with the same reader weights
   (:mod:`qasearch.bench.pipeline`) over (i) the same passages per question and
   (ii) every passage of the corpus;

plus, unless skipped, the answer-cache figures of ``qasearch redis-bench``.
The HTTP phases run first, while nothing else in this process uses the CPU; the
in-process phases run afterwards, while the system is idle.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from qasearch.bench import floor, floor_parallel, http_load, machine, pipeline
from qasearch.bench.snapshot import CorpusSnapshot
from qasearch.bench.timing import Summary, ratio
from qasearch.core import modelpkg
from qasearch.core.settings import Settings
from qasearch.core.topology import masters, node_client

Log = Callable[[str], None]


@dataclass
class BenchConfig:
    queries: int = 30  # c=1 requests, and the floor's questions (the same ones)
    warmup: int = 3
    latency_seconds: float = 180.0
    concurrency: tuple[int, ...] = (4, 8, 16)
    level_queries: int = 0  # 0: max(16, 3 x concurrency)
    level_seconds: float = 30.0
    floor: bool = True
    floor_threads: int = 0  # 0: min(cores, masters x torch_threads)
    floor_seconds: float = 120.0
    floor_parallel: bool = True  # also the best case in the workers' process layout
    padding_questions: int = 8  # questions for the bucket-vs-tight padding comparison
    pipeline: bool = True
    pipeline_questions: int = 30  # as many as the c=1 run: the ratio compares the same questions
    pipeline_all_questions: int = 2
    pipeline_all_limit: int = 0  # 0: truly every passage
    pipeline_seconds: float = 90.0
    pipeline_model: str | None = None
    redis_bench: bool = True
    redis_requests: int = 100_000
    num_results: int = 5

    @classmethod
    def quick(cls, **changes: object) -> BenchConfig:
        """About two minutes on the sample corpus and a 2-core machine."""
        base = cls(queries=10, warmup=2, level_queries=0, level_seconds=15.0,
                   padding_questions=3, pipeline_questions=4, pipeline_all_questions=1,
                   redis_requests=20_000)
        return dataclasses.replace(base, **changes)

    def level_count(self, concurrency: int) -> int:
        return self.level_queries or max(16, 3 * concurrency)


def settings_dict(settings: Settings) -> dict:
    found = dataclasses.asdict(settings)
    for secret in (f.name for f in dataclasses.fields(Settings) if not f.repr):
        found.pop(secret, None)  # the Redis password, the API key
    return found


def served_model(settings: Settings) -> tuple[dict, redis.Redis, str]:
    """The manifest of the current package on the first master, a client of that master
    and its node tag (to load the package from)."""
    first = masters(settings)[0]
    client = node_client(first.host, first.port, settings, socket_timeout=120)
    version = modelpkg.current_version(client, first.tag)
    if version is None:
        client.close()
        raise RuntimeError("no model package in the cluster; run `qasearch model push`")
    return modelpkg.read_manifest(client, first.tag, version), client, first.tag


def model_summary(manifest: dict) -> dict:
    reader = manifest.get("reader", {})
    return {
        "version": manifest.get("version"), "name": manifest.get("name"),
        "source": manifest.get("source"), "trained": manifest.get("trained"),
        "quantized": reader.get("quantized"), "reader_max_seq_len": reader.get("max_seq_len"),
        "reader_layers": reader.get("config", {}).get("num_hidden_layers"),
        "reader_hidden": reader.get("config", {}).get("hidden_size"),
        "embedder_dim": manifest.get("embedder", {}).get("dim"),
    }


def default_floor_threads(settings: Settings) -> int:
    """The compute the system has: its workers' torch threads, at most the machine's cores."""
    return max(1, min(os.cpu_count() or 1, len(masters(settings)) * settings.torch_threads))


def _subset_p50(run: http_load.LatencyRun, indexes: set[int]) -> float | None:
    values = [ms for i, ms in zip(run.order, run.timings_ms) if i in indexes]
    return Summary.of(values).p50_ms if values else None


def _parity(snapshot: CorpusSnapshot, model, warm: list[tuple[str, http_load.Reply]],
            settings: Settings) -> dict:
    """Whether every passage the gateway answered from is one the in-process retrieval picks."""
    checked = agreed = 0
    for question, reply in warm:
        if not reply.ok:
            continue
        picked = {p.key for node in snapshot.candidates(question, model.embed([question])[0],
                                                         settings) for p in node}
        answered = {r["sentencekey"] for r in reply.body.get("results", [])}
        checked += 1
        agreed += answered <= picked
    return {"questions": checked, "agreed": agreed}


class SideBySide:
    def __init__(self, settings: Settings, url: str, questions: list[str], config: BenchConfig,
                 log: Log = print) -> None:
        if not questions:
            raise ValueError("no questions")
        self.settings = settings
        self.url = url
        self.questions = questions
        self.config = config
        self.log = log
        self.asked = [questions[i % len(questions)] for i in range(max(1, config.queries))]
        self.results: dict = {"load_average_by_phase": {}}
        self.raw: dict = {}

    def phase(self, name: str) -> None:
        """Note the machine's load as a phase starts (other processes skew its figures)."""
        self.results["load_average_by_phase"][name] = machine.load_average()

    # --- a. the system, end to end -------------------------------------------
    def run_system(self, client: http_load.QueryClient) -> list[tuple[str, http_load.Reply]]:
        cfg = self.config
        self.log(f"warm-up: {cfg.warmup} queries (not counted)")
        warm = [(q, client.ask(q, num_results=100)) for q in self.asked[: cfg.warmup]]
        self.log(f"a. /qasearch, caches off, c=1: {len(self.asked)} queries to {self.url}")
        self.phase("system c=1")
        run = http_load.measure_latency(client, self.asked, len(self.asked), cfg.latency_seconds)
        self.system_run = run
        self.results["latency_c1"] = run.as_dict()
        self.raw["system_c1_ms"] = run.timings_ms
        self.log(f"   {run.summary.line()}   errors {run.errors}, partial {run.partial}, "
                 f"cached {run.cached}")
        levels = []
        for c in cfg.concurrency:
            count = cfg.level_count(c)
            self.log(f"a. throughput at c={c}: up to {count} queries or {cfg.level_seconds:.0f}s")
            self.phase(f"system c={c}")
            level = http_load.measure_throughput(client, self.questions, c, count,
                                                 cfg.level_seconds, offset=7 * c)
            levels.append(level.as_dict())
            lat = level.latency
            self.log(f"   {level.rps:.2f} req/s ({level.completed} in {level.seconds:.1f}s, "
                     f"stopped by {level.stopped_by}, errors {level.errors})"
                     + (f", p50 {lat.p50_ms:.0f} ms p95 {lat.p95_ms:.0f} ms" if lat else ""))
        self.results["throughput"] = levels
        self.results["system_notes"] = client.notes
        self.results["cache_flag_sent"] = client.send_cache_flag
        versions = sorted(run.model_versions)
        self.results["gateway_model_versions"] = versions
        return warm

    def run_redis_bench(self) -> None:
        from qasearch.bench.redisbench import measure as measure_redis

        self.log("answer cache: redis-benchmark on an answer key, cached /qasearch")
        report = measure_redis(self.settings, self.url, self.asked[0],
                               self.config.redis_requests)
        for line in report.lines():
            self.log("   " + line)
        self.results["answer_cache"] = report.as_dict()

    # --- b. the floor ----------------------------------------------------------
    def load_in_process(self, threads: int):
        from qasearch.core.models import LoadedModel

        started = time.perf_counter()
        package = modelpkg.load(self.model_client, self.model_tag, self.manifest["version"])
        model = LoadedModel.from_package(package, threads=threads)
        snapshot = CorpusSnapshot.read(self.settings, model)
        self.log(f"in-process: model {model.version} on {threads} torch threads, "
                 f"{snapshot.size} passages read back in {time.perf_counter() - started:.1f}s"
                 + (f" ({snapshot.missing} without tensors, {snapshot.stale} stale)"
                    if snapshot.missing or snapshot.stale else ""))
        self.results["corpus"] = {"passages": snapshot.size, "missing_tensors": snapshot.missing,
                                  "stale_tensors": snapshot.stale,
                                  "partitions": sum(len(n.indexes) for n in snapshot.nodes)}
        return model, snapshot

    def run_floor(self, model, snapshot: CorpusSnapshot) -> floor.FloorLatency:
        cfg = self.config
        self.log(f"b. floor, c=1: the same {len(self.asked)} questions, same passages and batches")
        self.phase("floor")
        lat = floor.measure_latency(model, snapshot, self.asked, self.settings,
                                    warmup=cfg.warmup, max_seconds=cfg.floor_seconds, log=self.log)
        d = lat.as_dict()
        self.results["floor_latency"] = d
        self.raw["floor_ms"] = [r.floor_ms for r in lat.runs]
        self.log(f"   floor {Summary.of(self.raw['floor_ms']).line()}")
        self.log(f"   per question: {d['passages_per_question']:.1f} passages, "
                 f"{d['windows_per_question']:.1f} windows in {d['batches_per_question']:.1f} "
                 f"batches; embed p50 {d['embed_ms']['p50_ms']:.1f} ms, reader p50 "
                 f"{d['reader_ms']['p50_ms']:.1f} ms (retrieval+windows p50 "
                 f"{d['prep_ms']['p50_ms']:.1f} ms, decoding p50 {d['decode_ms']['p50_ms']:.1f} ms"
                 " not in the floor)")
        asked = [r.question for r in lat.runs]
        batches = floor.best_case_batches(model, snapshot, asked, self.settings)
        tp = floor.measure_throughput(model, asked, batches)
        best = tp.as_dict()
        best["layout"] = f"1 process x {self.results['in_process_threads']} threads"
        self.results["floor_throughput_in_process"] = dict(best)
        self.log(f"b. floor, best-case batched, {best['layout']}: {tp.questions_per_s:.2f} "
                 f"questions/s ({tp.windows} windows in {tp.batches} batches)")
        procs = min(os.cpu_count() or 1, len(snapshot.nodes))
        if cfg.floor_parallel and (procs, self.settings.torch_threads) != (
                1, self.results["in_process_threads"]):
            par = floor_parallel.queries(self.settings, model.version, asked, batches, procs,
                                         self.settings.torch_threads)
            self.results["floor_throughput_parallel"] = par.as_dict("questions")
            self.log(f"b. floor, best-case batched, {par.layout} (the workers' layout): "
                     f"{par.per_s:.2f} questions/s")
            if par.per_s > best["questions_per_s"]:
                best.update(questions_per_s=par.per_s, layout=par.layout)
        self.results["floor_throughput"] = best  # the better of the two layouts
        if cfg.padding_questions:
            pad = floor.measure_padding(model, snapshot, self.asked[: cfg.padding_questions],
                                        self.settings)
            self.results["padding"] = pad.as_dict()
            self.log(f"b. padding: reader {pad.bucket_ms:.0f} ms/question with the worker's "
                     f"buckets ({pad.bucket_tokens:.0f} tokens), {pad.tight_ms:.0f} ms padded "
                     f"to each batch's longest window ({pad.tight_tokens:.0f} tokens)")
        return lat

    # --- c. the pipeline ---------------------------------------------------------
    def run_pipeline(self, model, snapshot: CorpusSnapshot, threads: int,
                     floor_lat: floor.FloorLatency | None) -> None:
        cfg = self.config
        reader = pipeline.load(self.manifest, threads, self.settings, cfg.pipeline_model)
        self.phase("pipeline")
        self.log(f"c. transformers pipeline (warm, eager, {threads} threads): {reader.note}")
        if floor_lat is not None:
            same = [(r.question, [p.text for p in r.passages]) for r in floor_lat.runs]
        else:
            same = []
            for q in self.asked[: cfg.pipeline_questions]:
                per_node = snapshot.candidates(q, model.embed([q])[0], self.settings)
                same.append((q, [p.text for node in per_node for p in node]))
        same = same[: cfg.pipeline_questions]
        every = [p.text for p in snapshot.passages.values()]
        if cfg.pipeline_all_limit:
            every = every[: cfg.pipeline_all_limit]
        runs = {
            "same_passages": pipeline.measure(reader, "(i) same passages", same, self.settings,
                                              cfg.pipeline_seconds, self.log),
            "every_passage": pipeline.measure(
                reader, "(ii) every passage",
                [(q, every) for q in self.asked[: cfg.pipeline_all_questions]],
                self.settings, cfg.pipeline_seconds, self.log),
        }
        self.results["pipeline"] = {
            "source": reader.source, "weights_identical": reader.weights_identical,
            "note": reader.note, "threads": threads,
            "every_passage_capped_at": cfg.pipeline_all_limit or None,
            **{k: v.as_dict() for k, v in runs.items()},
        }
        for key, run in runs.items():
            self.raw[f"pipeline_{key}_ms"] = run.timings_ms
            if run.timings_ms:
                self.log(f"   {run.label}: {run.contexts_per_question:.0f} passages/question, "
                         f"{Summary.of(run.timings_ms).line()}")

    # --- ratios ----------------------------------------------------------------
    def ratios(self) -> dict:
        r: dict = {}
        system = self.results["latency_c1"]
        levels = self.results.get("throughput", [])
        best = max(levels, key=lambda x: x["requests_per_s"], default=None)
        if "floor_latency" in self.results:
            fl = self.results["floor_latency"]["floor_ms"]
            r["latency_system_over_floor_p50"] = ratio(system["p50_ms"], fl["p50_ms"])
            r["latency_system_over_floor_mean"] = ratio(system["mean_ms"], fl["mean_ms"])
            fq = self.results["floor_throughput"]["questions_per_s"]
            r["floor_sequential_questions_per_s"] = 1000.0 / fl["mean_ms"]
            if best:
                r["throughput_system_over_floor"] = ratio(best["requests_per_s"], fq)
                r["throughput_best_concurrency"] = best["concurrency"]
            r["throughput_system_over_floor_by_concurrency"] = {
                str(x["concurrency"]): ratio(x["requests_per_s"], fq) for x in levels
            }
        if "pipeline" in self.results:
            p = self.results["pipeline"]
            for key in ("same_passages", "every_passage"):
                lat = p[key]["latency"]
                if not lat:
                    continue
                # the system's p50 over the same questions (the first ``count`` asked)
                sys_p50 = _subset_p50(self.system_run, set(range(lat["count"])))
                r[f"pipeline_{key}_latency_speedup"] = ratio(lat["p50_ms"], sys_p50)
                r[f"pipeline_{key}_system_p50_same_questions_ms"] = sys_p50
                if best:
                    r[f"pipeline_{key}_throughput_speedup"] = ratio(
                        best["requests_per_s"], p[key]["questions_per_s"])
        return r

    # --- everything --------------------------------------------------------------
    def run(self) -> tuple[dict, dict]:
        """(results, raw timings) of the whole run."""
        cfg = self.config
        started = time.time()
        self.results.update({
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine.describe(),
            "settings": settings_dict(self.settings),
            "config": {k: v for k, v in dataclasses.asdict(cfg).items()},
            "questions_available": len(self.questions),
        })
        self.manifest, self.model_client, self.model_tag = served_model(self.settings)
        self.results["model"] = model_summary(self.manifest)
        if not self.manifest.get("trained"):
            self.results["model"]["warning"] = (
                "UNTRAINED QA head: the answers are meaningless; only speed counts here")
        client = http_load.QueryClient(self.url, cfg.num_results,
                                       api_key=self.settings.api_key)
        warm = self.run_system(client)
        if cfg.redis_bench:
            self.run_redis_bench()
        threads = cfg.floor_threads or default_floor_threads(self.settings)
        self.results["in_process_threads"] = threads
        if cfg.floor or cfg.pipeline:
            model, snapshot = self.load_in_process(threads)
            self.results["retrieval_parity"] = _parity(snapshot, model, warm, self.settings)
            floor_lat = self.run_floor(model, snapshot) if cfg.floor else None
            if cfg.pipeline:
                try:
                    self.run_pipeline(model, snapshot, threads, floor_lat)
                except pipeline.PipelineUnavailable as exc:
                    self.log(f"c. pipeline skipped: {exc}")
                    self.results["pipeline_skipped"] = str(exc)
        self.model_client.close()
        self.results["ratios"] = self.ratios()
        self.results["machine"]["load_average_at_end"] = machine.load_average()
        self.phase("end")
        self.results["seconds"] = round(time.time() - started, 1)
        return self.results, self.raw
