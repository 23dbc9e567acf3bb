"""The report's ranking check: does the correspondence score pick the faithful candidates?"""

import math

import pytest

from realfill.evaluation.report import ranking_quality, spearman
from realfill.evaluation.results import CandidateResult


def candidates(scores: list[float], psnrs: list[float], keep: int) -> list[CandidateResult]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    rank = {index: position for position, index in enumerate(order)}
    return [
        CandidateResult("realfill", "scene", i, s, rank[i], rank[i] < keep, f"{i}.png", {"psnr": p})
        for i, (s, p) in enumerate(zip(scores, psnrs, strict=True))
    ]


def test_a_score_that_orders_psnr_has_rho_one_and_the_selection_gain():
    rows = ranking_quality(candidates([40, 30, 20, 10], [18.0, 16.0, 14.0, 12.0], keep=1))
    assert len(rows) == 1
    row = rows[0]
    assert row["spearman_score_psnr"] == pytest.approx(1.0, abs=1e-5)
    assert row["psnr_all"] == pytest.approx(15.0)
    assert row["selection_gain_db"] == pytest.approx(3.0)


def test_a_score_that_picks_the_worst_has_negative_rho_and_gain():
    row = ranking_quality(candidates([10, 20, 30, 40], [18.0, 16.0, 14.0, 12.0], keep=2))[0]
    assert row["spearman_score_psnr"] == pytest.approx(-1.0, abs=1e-5)
    assert row["selection_gain_db"] == pytest.approx(-2.0)


def test_identical_candidates_and_unranked_methods_are_left_out():
    scored = candidates([40, 30, 20, 10], [math.inf, 16.0, 14.0, 12.0], keep=2)
    assert ranking_quality(scored)[0]["candidates"] == 3  # the infinite PSNR is left out
    assert ranking_quality(candidates([1, 2, 3], [10.0, 11.0, 12.0], keep=3)) == []


def test_spearman_is_undefined_for_constant_scores():
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 2.5]) == pytest.approx(-0.5, abs=1e-5)
