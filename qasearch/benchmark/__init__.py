"""``qasearch bench``: the running system measured beside its floor and the usual alternative.

Modules, one concern each:

* :mod:`~qasearch.benchmark.timing`     percentiles and summaries of timings
* :mod:`~qasearch.benchmark.machine`    what the figures were measured on
* :mod:`~qasearch.benchmark.http_load`  end-to-end ``POST /qasearch``: latency at c=1, throughput
* :mod:`~qasearch.benchmark.snapshot`   the corpus read back from the cluster, retrieval in-process
* :mod:`~qasearch.benchmark.floor`      the same forward passes in-process: the floor
* :mod:`~qasearch.benchmark.pipeline`   a warm ``transformers`` QA pipeline with the same weights
* :mod:`~qasearch.benchmark.baseline`   the twenty-line alternative, in a process of its own
* :mod:`~qasearch.benchmark.per_k`      the system per K through the gateway; both sides' summaries
* :mod:`~qasearch.benchmark.fair`       section d: the two per K, same corpus, questions and weights
* :mod:`~qasearch.benchmark.masters`    section e: the same corpus on fresh clusters of M masters
* :mod:`~qasearch.benchmark.side_by_side`  one run of all of the above, same questions and model
* :mod:`~qasearch.benchmark.scale`      synthetic corpora of growing size in fresh systems
* :mod:`~qasearch.benchmark.scratch`    a throw-away system (cluster, workers, gateway) for those
* :mod:`~qasearch.benchmark.report`     results.json and report.md (d and e: ``report_baseline``)
* :mod:`~qasearch.benchmark.plots`      the PNG plots
"""
