"""SQuAD-format training files (v1.1 and v2.0), read and checked whole before training.

A training run must not start on data it would misread: a file that is not
SQuAD, an answer that is not the span of its context it claims to be, or a file
without a single question stops with a :class:`~loaders.documents.LoadError`
naming the file, the question and what is wrong, before any model is loaded.

v2.0 files mark unanswerable questions with ``is_impossible: true`` and no
answers; they become examples whose label is "no answer". The v2.0 train set
repeats v1.1's answerable questions under the same ids, so a question seen
before (same id, or same question on the same context) is counted once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from loaders import squad
from loaders.documents import LoadError, json_kind
from qasearch.core.settings import Settings


@dataclass(frozen=True)
class Example:
    """One question on one paragraph; ``answers`` is empty for an unanswerable one."""

    qid: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]  # (text, character start), first = the label
    article: int  # index of the article (per file) the paragraph belongs to
    paragraph: int  # index of the paragraph in the whole data set

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass
class TrainingData:
    """Examples of one or more files, with what was read and skipped."""

    examples: list[Example] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)  # by paragraph index
    articles: list[list[int]] = field(default_factory=list)  # paragraph indexes per article
    digests: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    duplicates: int = 0
    paragraph_of: dict[str, int] = field(default_factory=dict, repr=False)  # context -> index

    @property
    def answerable(self) -> int:
        return sum(e.answerable for e in self.examples)

    @property
    def unanswerable(self) -> int:
        return len(self.examples) - self.answerable


def _fail(path: Path, where: str, message: str) -> LoadError:
    return LoadError(str(path), where, message)


def _answers(path: Path, where: str, qa: dict, context: str) -> tuple[tuple[str, int], ...]:
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise _fail(path, where, f'"is_impossible" must be a boolean, got {json_kind(impossible)}')
    answers = qa.get("answers", [])
    if not isinstance(answers, list):
        raise _fail(path, where, f'"answers" must be an array, got {json_kind(answers)}')
    if impossible:
        return ()
    if not answers:
        raise _fail(path, where, 'no "answers" and not marked "is_impossible": true')
    out = []
    for k, answer in enumerate(answers):
        here = f"{where}.answers[{k}]"
        if not isinstance(answer, dict):
            raise _fail(path, here, f"expected an object, got {json_kind(answer)}")
        text, start = answer.get("text"), answer.get("answer_start")
        if not isinstance(text, str) or not text.strip():
            raise _fail(path, here, f'"text" must be a non-empty string, got {json_kind(text)}')
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise _fail(path, here,
                        f'"answer_start" must be a non-negative integer, got {json_kind(start)}')
        found = context[start : start + len(text)]
        if found != text:
            raise _fail(path, here, f"answer {text!r} is not the span of its context at "
                        f"character {start} (the context there reads {found!r})")
        out.append((text, start))
    return tuple(out)


def read_file(path: Path, data: TrainingData, max_file_bytes: int) -> None:
    """Add the examples of one SQuAD file to ``data`` (checked whole first).

    The file's structure (JSON, articles, paragraphs, contexts) is read by the SQuAD
    corpus loader, so training and loading accept and refuse the same files; only
    the questions and their answer spans are checked here."""
    path = Path(path)
    raw = path.read_bytes() if path.is_file() else b""  # a missing file: the loader says so
    if path.is_file() and not raw.strip():
        raise _fail(path, "", "the file is empty (nothing to train on)")
    paragraphs = squad.read_paragraphs(path, max_file_bytes)
    staged: list[Example] = []
    contexts: dict[str, int] = {}  # new contexts of this file, committed once it is whole
    groups: dict[str, list[int]] = {}  # article title -> its paragraphs' indexes
    for paragraph in paragraphs:
        here, context = paragraph.location, paragraph.context
        if not isinstance(paragraph.qas, list):
            raise _fail(path, here, f'"qas" must be an array, got {json_kind(paragraph.qas)}')
        # A context seen before (in an earlier file, or repeated) is one paragraph.
        index = data.paragraph_of.get(context)
        if index is None:
            index = contexts.setdefault(context, len(data.contexts) + len(contexts))
        title = paragraph.doc_id.rsplit("#", 1)[0]  # the loader's ids are "<title>#<n>"
        group = groups.setdefault(title, [])
        article = len(data.articles) + list(groups).index(title)
        group.append(index)
        for q, qa in enumerate(paragraph.qas):
            spot = f"{here}.qas[{q}]"
            if not isinstance(qa, dict):
                raise _fail(path, spot, f"expected an object, got {json_kind(qa)}")
            question, qid = qa.get("question"), qa.get("id", spot)
            if not isinstance(question, str) or not question.strip():
                raise _fail(path, spot, f'"question" must be a non-empty string, '
                            f"got {json_kind(question)}")
            staged.append(Example(str(qid), question, context,
                                  _answers(path, spot, qa, context), article, index))
    if not staged:
        raise _fail(path, "", "no questions in this file (nothing to train on)")
    seen_ids = {e.qid for e in data.examples}
    seen_pairs = {(e.question, e.context) for e in data.examples}
    for example in staged:
        if example.qid in seen_ids or (example.question, example.context) in seen_pairs:
            data.duplicates += 1
            continue
        seen_ids.add(example.qid)
        seen_pairs.add((example.question, example.context))
        data.examples.append(example)
    data.contexts.extend(contexts)  # dicts keep insertion order: indexes match
    data.paragraph_of.update(contexts)
    data.articles.extend(groups.values())
    data.digests[path.name] = hashlib.sha256(raw).hexdigest()


def read_training_files(paths: list[Path],
                        max_file_bytes: int = Settings().max_file_bytes) -> TrainingData:
    """Every example of ``paths``, in file order, duplicates across files dropped."""
    if not paths:
        raise ValueError("no training files given")
    data = TrainingData()
    for path in paths:
        read_file(Path(path), data, max_file_bytes)
    return data
