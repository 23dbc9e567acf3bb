"""Writing a selection: every candidate, the top ones, their scores and a contact sheet."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from realfill.data import load_scene
from realfill.selection.writing import (
    MISSING_COLOUR,
    RankedCandidate,
    Selection,
    report_selection,
    write_selection,
)


def noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), np.uint8))


def test_candidates_given_as_files_are_copied_byte_for_byte_and_images_are_encoded(tmp_path):
    written = tmp_path / "staged.png"
    noise(0).save(written, compress_level=9)  # not the level write_selection encodes at
    out = tmp_path / "completions"
    records = write_selection(out, [written, noise(1)], [3, 4], [1, 5], keep=1).candidates

    assert [(r.seed, r.rank) for r in records] == [(4, 1), (3, 2)]
    assert (out / "candidates" / "seed00003.png").read_bytes() == written.read_bytes()
    encoded = np.asarray(Image.open(out / "candidates" / "seed00004.png"))
    assert np.array_equal(encoded, np.asarray(noise(1)))
    ranked = sorted(p.name for p in (out / "ranked").iterdir())
    assert ranked == ["rank01_seed00004.png"]
    assert json.loads((out / "scores.json").read_text())[0]["file"] == "candidates/seed00004.png"
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.width > 0


def test_the_contact_sheet_opens_with_the_target_its_hole_marked_and_the_references(
    scene_dir, tmp_path
):
    scene = load_scene(scene_dir)
    write_selection(tmp_path / "plain", [noise(1), noise(2)], [0, 1], [1, 2], keep=1)
    write_selection(tmp_path / "headed", [noise(1), noise(2)], [0, 1], [1, 2], 1, scene=scene)
    plain = np.asarray(Image.open(tmp_path / "plain" / "contact_sheet.png"))
    headed = np.asarray(Image.open(tmp_path / "headed" / "contact_sheet.png"))
    header = len(headed) - len(plain)
    assert header > 0
    assert (headed[:header] == MISSING_COLOUR).all(axis=-1).any()  # the target's hole
    assert np.array_equal(headed[header:, : plain.shape[1]], plain)  # the candidates below


def records(*scores: int) -> list[RankedCandidate]:
    return [
        RankedCandidate(seed, score, rank + 1, f"candidates/seed{seed:05d}.png")
        for rank, (seed, score) in enumerate(enumerate(scores))
    ]


def test_the_report_names_the_best_completion_and_says_when_nothing_matched(capsys):
    out = Path("run/completions")
    report_selection(Selection(out, records(12, 3), keep=2), seconds=6.0)
    shown = capsys.readouterr().out
    assert "Sampled and ranked 2 candidates in 6.0 s (20.0/min)" in shown
    assert f"Best completion: {out / 'candidates/seed00000.png'} (seed 0, 12 matches)" in shown
    assert "No candidate" not in shown

    report_selection(Selection(out, records(0, 0), keep=2), seconds=6.0)
    assert "No candidate's fill matched the references" in capsys.readouterr().out
