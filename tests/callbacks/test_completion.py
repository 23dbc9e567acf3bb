"""What the end-of-fit selection tells the user."""

from pathlib import Path

from realfill.callbacks import CompleteTarget
from realfill.callbacks.selection import RankedCandidate


def records(*scores: int) -> list[RankedCandidate]:
    return [
        RankedCandidate(seed, score, rank + 1, f"candidates/seed{seed:05d}.png")
        for rank, (seed, score) in enumerate(enumerate(scores))
    ]


def test_the_report_names_the_best_completion_and_says_when_nothing_matched(capsys):
    out = Path("run/completions")
    CompleteTarget().report(out, records(12, 3), seconds=6.0)
    shown = capsys.readouterr().out
    assert "Sampled and ranked 2 candidates in 6.0 s (20.0/min)" in shown
    assert f"Best completion: {out / 'candidates/seed00000.png'} (seed 0, 12 matches)" in shown
    assert "No candidate" not in shown

    CompleteTarget().report(out, records(0, 0), seconds=6.0)
    assert "No candidate's fill matched the references" in capsys.readouterr().out
