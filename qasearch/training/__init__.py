"""Fine-tuning an extractive-QA reader on SQuAD-format data (``qasearch model train``).

``squaddata`` reads and checks the files, ``features`` cuts them into labelled
windows, ``trainer`` runs the seeded, checkpointed training loop, ``scoring``
scores a finished run on a dev file (a run is shipped by ``loaders.shipped_reader``).
"""
