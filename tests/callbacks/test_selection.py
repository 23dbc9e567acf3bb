"""Writing a selection: every candidate, the top ones, their scores and a contact sheet."""

import json

import numpy as np
from PIL import Image

from realfill.callbacks.selection import write_selection


def noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), np.uint8))


def test_candidates_given_as_files_are_copied_byte_for_byte_and_images_are_encoded(tmp_path):
    written = tmp_path / "staged.png"
    noise(0).save(written, compress_level=9)  # not the level write_selection encodes at
    out = tmp_path / "completions"
    records = write_selection(out, [written, noise(1)], seeds=[3, 4], scores=[1, 5], keep=1)

    assert [(r.seed, r.rank) for r in records] == [(4, 1), (3, 2)]
    assert (out / "candidates" / "seed00003.png").read_bytes() == written.read_bytes()
    encoded = np.asarray(Image.open(out / "candidates" / "seed00004.png"))
    assert np.array_equal(encoded, np.asarray(noise(1)))
    ranked = sorted(p.name for p in (out / "ranked").iterdir())
    assert ranked == ["rank01_seed00004.png"]
    assert json.loads((out / "scores.json").read_text())[0]["file"] == "candidates/seed00004.png"
    assert Image.open(out / "contact_sheet.png").width > 0
