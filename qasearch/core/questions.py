"""Questions from a SQuAD-format file, for benchmarks and checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SquadQuestion:
    qid: str
    question: str
    answers: tuple[str, ...]
    context: str


def read_squad_questions(path: str | Path) -> list[SquadQuestion]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    found = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] for a in qa.get("answers", []))
                found.append(SquadQuestion(qa["id"], qa["question"], answers, paragraph["context"]))
    return found
