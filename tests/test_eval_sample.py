"""``qasearch eval --sample``: questions drawn from the whole file, seeded, in file order."""

from __future__ import annotations

from qasearch import cli
from qasearch.commands.eval import _sample
from tests.system import REPO


def test_a_sample_spreads_over_the_file_and_repeats_with_its_seed():
    questions = list(range(1000))
    picked = _sample(questions, 30, seed=0)
    assert len(picked) == 30 and picked == sorted(picked)
    assert picked == _sample(questions, 30, seed=0) != _sample(questions, 30, seed=1)
    assert max(picked) > 500, "the first questions of a SQuAD file are one article"
    assert _sample(questions[:5], 30, seed=0) == questions[:5]


def test_sample_is_refused_outside_open_mode(capsys):
    dev = REPO / "data" / "squad" / "dev-v2.0-half.json"
    assert cli.main(["eval", str(dev), "--mode", "reader", "--sample", "5"]) == 2
    assert "--sample applies to --mode open" in capsys.readouterr().err
    assert cli.main(["eval", str(dev), "--mode", "open", "--sample", "0"]) == 2
    assert "--sample must be at least 1" in capsys.readouterr().err
