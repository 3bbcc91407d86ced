"""Answer quality: the official SQuAD metric, reader-only and open-domain scoring.

* :mod:`qasearch.bench.evaluation.metric` -- normalisation, exact match, token F1.
* :mod:`qasearch.bench.evaluation.squadfile` -- the questions of a SQuAD v1.1/v2.0 file.
* :mod:`qasearch.bench.evaluation.reader_eval` -- each question against its own paragraph,
  through the workers' window and decoding code (:func:`evaluate_reader`).
* :mod:`qasearch.bench.evaluation.open_domain` -- every question through a running gateway.
"""
