"""Measurement: speed, answer quality and behaviour under failure, each a command.

``qasearch bench`` (the running system beside its floor and the usual alternative),
``qasearch eval`` (:mod:`qasearch.bench.evaluation`), ``qasearch chaos`` (``chaos``,
``soak``, ``procmem``), ``qasearch redisbench`` and ``qasearch recall``. ``client`` is
the small HTTP client they share; ``agreement`` scores a quantised reader beside its
fp32 one. The benchmark's modules, one concern each:

* :mod:`~qasearch.bench.timing`     percentiles and summaries of timings
* :mod:`~qasearch.bench.machine`    what the figures were measured on
* :mod:`~qasearch.bench.http_load`  end-to-end ``POST /qasearch``: latency at c=1, throughput
* :mod:`~qasearch.bench.snapshot`   the corpus read back from the cluster, retrieval in-process
* :mod:`~qasearch.bench.floor`      the same forward passes in-process: the floor
* :mod:`~qasearch.bench.pipeline`   a warm ``transformers`` QA pipeline with the same weights
* :mod:`~qasearch.bench.baseline`   the twenty-line alternative, in a process of its own
* :mod:`~qasearch.bench.per_k`      the system per K through the gateway; both sides' summaries
* :mod:`~qasearch.bench.fair`       section d: the two per K, same corpus, questions and weights
* :mod:`~qasearch.bench.masters`    section e: the same corpus on fresh clusters of M masters
* :mod:`~qasearch.bench.side_by_side`  one run of all of the above, same questions and model
* :mod:`~qasearch.bench.scale`      synthetic corpora of growing size in fresh systems
* :mod:`~qasearch.bench.scratch`    a throw-away system (cluster, workers, gateway) for those
* :mod:`~qasearch.bench.report`     results.json and report.md (d and e: ``report_baseline``)
* :mod:`~qasearch.bench.plots`      the PNG plots
"""
