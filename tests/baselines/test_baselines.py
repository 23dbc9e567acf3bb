"""Baselines on real photographs: the geometric reference baseline beats the OpenCV floor."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realfill.baselines import GeometricBaseline, OpenCVInpaint, diffusion, write_completion
from realfill.baselines.diffusion import scene_prompt
from realfill.baselines.geometric import dilate
from realfill.callbacks import SIFTMatcher
from realfill.data import load_scene
from realfill.errors import OutputError, SceneError
from realfill.evaluation.backbones import low_level
from realfill.evaluation.metrics import masked_psnr
from realfill.evaluation.results import read_scores

REPO = Path(__file__).resolve().parents[2]
psnr = low_level(masked_psnr)
FEATHER = 2
"""The default compositing (dilation 1 + blur 1) changes pixels at most this far from the hole."""


def test_geometric_baseline_beats_the_opencv_floor_on_the_motorcycle_scene():
    scene = load_scene(REPO / "examples" / "motorcycle")  # = the builder's inpainting scene
    geometric = GeometricBaseline().complete(scene)
    floor = OpenCVInpaint().complete(scene)
    geometric_psnr = psnr(geometric, scene.ground_truth, scene.mask)
    floor_psnr = psnr(floor, scene.ground_truth, scene.mask)
    assert geometric_psnr > floor_psnr + 0.5, (geometric_psnr, floor_psnr)
    far = ~dilate(np.asarray(scene.mask) > 0, FEATHER)  # beyond the feathered seam
    assert np.array_equal(np.asarray(geometric)[far], np.asarray(scene.target)[far])


def half(image: Image.Image) -> Image.Image:
    """An image at half size (nearest for masks keeps them binary)."""
    size = (image.width // 2, image.height // 2)
    return image.resize(size, Image.Resampling.NEAREST if image.mode == "L" else Image.BICUBIC)


def test_a_reference_that_is_the_shifted_target_fills_the_hole_almost_exactly():
    scene = load_scene(REPO / "examples" / "motorcycle")
    truth = half(scene.ground_truth)
    shifted = Image.new("RGB", truth.size)
    shifted.paste(truth, (-7, 3))  # a pure translation: a homography recovers it exactly
    mask = half(scene.mask)
    target = Image.composite(Image.new("RGB", truth.size, (255,) * 3), truth, mask)
    scene = replace(scene, references=[shifted], target=target, mask=mask, ground_truth=truth)
    completion = GeometricBaseline().complete(scene)
    assert psnr(completion, truth, scene.mask) > 30


def test_a_baseline_completion_is_written_in_the_sample_layout(tmp_path):
    scene = load_scene(REPO / "examples" / "motorcycle")
    out = tmp_path / "completions"
    cheap = SIFTMatcher(num_features=128, max_side=160)
    write_completion(out, OpenCVInpaint().complete(scene), scene, cheap)
    records = read_scores(out)
    assert [(r["seed"], r["rank"], r["file"]) for r in records] == [
        (0, 1, "candidates/seed00000.png")
    ]
    assert (out / "ranked" / "rank01_seed00000.png").is_file()


def test_a_prompt_that_is_not_utf8_is_one_error_naming_it(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(b"\xff\xfe caf\xe9")
    with pytest.raises(SceneError, match=f"^{prompt}: not UTF-8 text \\(byte 0xff at offset 0\\)$"):
        scene_prompt(tmp_path)
    prompt.write_text("  a red motorcycle\n")
    assert scene_prompt(tmp_path) == "a red motorcycle"
    assert scene_prompt(tmp_path / "elsewhere") == "a photo"


def test_a_run_folder_under_a_file_is_one_error_before_the_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(diffusion, "fit", lambda *_: pytest.fail("the fit ran"))
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    run_dir = blocker / "realfill" / "scene" / "run"
    with pytest.raises(OutputError, match=f"^{run_dir / 'benchmark-preset.yaml'}: cannot be"):
        diffusion.fit_then_sample([], tmp_path, run_dir, tmp_path / "out", [], [])
    assert blocker.read_text() == "not a folder"


def test_a_reference_too_small_to_describe_leaves_the_geometric_fill_to_the_others():
    scene = load_scene(REPO / "examples" / "motorcycle")
    strip = scene.references[0].resize((400, 30))
    with_strip = replace(scene, references=[strip, *scene.references])
    assert GeometricBaseline().complete(with_strip) == GeometricBaseline().complete(scene)
