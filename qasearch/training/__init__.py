"""Fine-tuning an extractive-QA reader on SQuAD-format data (``qasearch model train``).

``squaddata`` reads and checks the files, ``features`` cuts them into labelled
windows, ``trainer`` runs the seeded, checkpointed training loop, ``delta``
stores a trained MiniLM reader as the tensors that differ from its base package.
"""
