"""Corpus loaders (JSONL, SQuAD, CORD-19, plain text) and the model loader."""
