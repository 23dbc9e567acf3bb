"""Feathered compositing: exact bytes away from the hole, the sample inside, a soft band between."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from realfill.baselines import GeometricBaseline
from realfill.errors import ConfigError
from realfill.selection.compositing import (
    FeatheredComposite,
    check_feathering,
    composite,
    feather_mask,
    mask_to_tensor,
)

HEIGHT, WIDTH = 24, 32


def chebyshev_distance(mask: np.ndarray) -> np.ndarray:
    """Per pixel, the chessboard distance to the nearest True pixel of ``mask`` (brute force)."""
    ys, xs = np.nonzero(mask)
    grid_y, grid_x = np.indices(mask.shape)
    dy = np.abs(grid_y[..., None] - ys)
    dx = np.abs(grid_x[..., None] - xs)
    return np.maximum(dy, dx).min(axis=-1)


def noise_image(seed: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    """A random RGB image, so that any changed byte shows."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def box_mask(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """A bool [HEIGHT, WIDTH] mask, True (missing) on rows top:bottom and columns left:right."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def to_image(mask: np.ndarray) -> Image.Image:
    """A bool mask as a scene mask image: mode L, 255 = missing."""
    return Image.fromarray(mask.astype(np.uint8) * 255)


MASKS = {
    "centre": box_mask(8, 10, 16, 22),
    "left edge": box_mask(4, 0, 20, 6),
    "corner": box_mask(0, 24, 7, 32),
    "scattered": np.random.default_rng(0).random((HEIGHT, WIDTH)) < 0.03,
}


@pytest.mark.parametrize("name", list(MASKS))
@pytest.mark.parametrize(("dilation", "blur"), [(0, 0), (1, 1), (2, 1), (0, 2), (3, 0)])
def test_alpha_is_exact_far_from_and_deep_inside_the_hole(name, dilation, blur):
    mask = MASKS[name]
    alpha = feather_mask(torch.from_numpy(mask), dilation=dilation, blur=blur).numpy()
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    far = chebyshev_distance(mask) > dilation + blur
    assert np.all(alpha[far] == 0.0)
    deep = chebyshev_distance(~mask) > blur - dilation if (~mask).any() else mask
    assert np.all(alpha[deep & mask] == 1.0)
    assert np.all(alpha[mask] > 0.0)


def test_hole_touching_the_border_is_not_faded_by_it():
    mask = MASKS["left edge"]
    alpha = feather_mask(torch.from_numpy(mask), dilation=1, blur=1).numpy()
    # Column 0 in rows well inside the hole: the border does not count as known pixels.
    assert np.all(alpha[6:18, 0] == 1.0)
    # The opposite border, far from the hole, gets no alpha.
    assert np.all(alpha[:, -1] == 0.0)


def test_band_falls_off_monotonically_away_from_the_hole():
    mask = MASKS["centre"]
    alpha = feather_mask(torch.from_numpy(mask), dilation=2, blur=2).numpy()
    row = alpha[12, 16:]  # from the hole's centre rightwards, out past its edge
    assert np.all(np.diff(row) <= 0.0)
    assert row[0] == 1.0 and row[-1] == 0.0
    assert np.any((row > 0.0) & (row < 1.0))


def test_bool_and_float_masks_give_the_same_alpha():
    mask = MASKS["scattered"]
    from_bool = feather_mask(torch.from_numpy(mask))
    from_float = feather_mask(torch.from_numpy(mask.astype(np.float32)))
    assert torch.equal(from_bool, from_float)


def test_default_matches_the_public_implementations_pil_filters():
    mask_image = to_image(MASKS["scattered"] | MASKS["left edge"] | MASKS["corner"])
    reference = mask_image.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.BoxBlur(1))
    alpha = feather_mask(mask_to_tensor(mask_image)).numpy()
    assert np.abs(alpha * 255.0 - np.asarray(reference, dtype=np.float32)).max() <= 0.5


@pytest.mark.parametrize(
    ("mask", "dilation", "blur"),
    [(torch.zeros(1, 4, 4), 1, 1), (torch.zeros(4, 4), -1, 1), (torch.zeros(4, 4), 1, -1)],
)
def test_feather_mask_rejects_bad_input(mask, dilation, blur):
    with pytest.raises(ValueError):
        feather_mask(mask, dilation=dilation, blur=blur)


@pytest.mark.parametrize("name", list(MASKS))
@pytest.mark.parametrize(("dilation", "blur"), [(1, 1), (2, 3)])
def test_composite_keeps_target_bytes_outside_and_sample_bytes_inside(name, dilation, blur):
    mask = MASKS[name]
    target, generated = noise_image(1), noise_image(2)
    out = composite(generated, target, to_image(mask), dilation=dilation, blur=blur)
    assert out.mode == "RGB" and out.size == target.size
    out_px, target_px, generated_px = (np.asarray(im) for im in (out, target, generated))
    far = chebyshev_distance(mask) > dilation + blur
    assert np.array_equal(out_px[far], target_px[far])
    alpha = feather_mask(torch.from_numpy(mask), dilation=dilation, blur=blur).numpy()
    assert np.array_equal(out_px[alpha == 1.0], generated_px[alpha == 1.0])


def test_composite_band_is_the_rounded_blend():
    mask = MASKS["centre"]
    target = Image.new("RGB", (WIDTH, HEIGHT), (0, 0, 0))
    generated = Image.new("RGB", (WIDTH, HEIGHT), (200, 100, 255))
    out = np.asarray(composite(generated, target, to_image(mask), dilation=1, blur=2))
    alpha = feather_mask(torch.from_numpy(mask), dilation=1, blur=2).numpy()
    expected = np.rint(alpha[..., None] * np.array([200.0, 100.0, 255.0])).astype(np.uint8)
    assert np.array_equal(out, expected)


def test_no_dilation_no_blur_is_a_hard_paste():
    mask_image = to_image(MASKS["scattered"] | MASKS["corner"])
    target, generated = noise_image(3), noise_image(4)
    out = composite(generated, target, mask_image, dilation=0, blur=0)
    hard = Image.composite(generated, target, mask_image)
    assert np.array_equal(np.asarray(out), np.asarray(hard))


def test_generated_at_another_size_is_resized_bicubic_before_pasting():
    mask = MASKS["centre"]
    target = noise_image(5)
    generated = noise_image(6, size=(64, 64))
    out = np.asarray(composite(generated, target, to_image(mask)))
    resized = np.asarray(generated.resize(target.size, Image.Resampling.BICUBIC))
    alpha = feather_mask(torch.from_numpy(mask)).numpy()
    assert np.array_equal(out[alpha == 1.0], resized[alpha == 1.0])
    far = chebyshev_distance(mask) > 2
    assert np.array_equal(out[far], np.asarray(target)[far])


def full_blend(generated, target, mask: np.ndarray, dilation: int, blur: int) -> np.ndarray:
    """The whole-image float32 blend, written out: what a prepared composite must give."""
    resized = generated.resize(target.size, Image.Resampling.BICUBIC)
    alpha = feather_mask(torch.from_numpy(mask), dilation=dilation, blur=blur).numpy()[..., None]
    sample, kept = np.asarray(resized, np.float32), np.asarray(target, np.float32)
    return np.clip(np.rint(sample * alpha + kept * (1.0 - alpha)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(MASKS))
def test_a_composite_prepared_once_gives_each_sample_the_full_blends_bytes(name):
    target = noise_image(8)
    paste = FeatheredComposite(target, to_image(MASKS[name]), dilation=2, blur=3)
    for seed in (9, 10):
        sample = noise_image(seed, size=(40, 30))
        assert np.array_equal(
            np.asarray(paste(sample)), full_blend(sample, target, MASKS[name], 2, 3)
        )
    assert np.array_equal(np.asarray(paste(target)), np.asarray(target))


def test_mask_of_the_wrong_size_is_rejected_with_both_sizes():
    target = noise_image(7)
    mask = Image.new("L", (WIDTH + 1, HEIGHT), 0)
    with pytest.raises(ValueError, match=r"\(33, 24\).*\(32, 24\)"):
        composite(target, target, mask)


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "motorcycle" / "target"


@pytest.mark.skipif(not EXAMPLE.is_dir(), reason="examples/motorcycle is not in this checkout")
def test_compositing_the_ground_truth_onto_the_example_target_restores_it():
    target = Image.open(EXAMPLE / "target.png").convert("RGB")
    mask = Image.open(EXAMPLE / "mask.png")
    gt = Image.open(EXAMPLE / "gt.png").convert("RGB")
    assert mask.mode == "L" and mask.size == target.size == gt.size
    hole = np.asarray(mask) == 255
    assert np.all(np.asarray(target)[hole] == 255), "the target's hole is painted white"
    assert np.array_equal(np.asarray(target)[~hole], np.asarray(gt)[~hole])
    assert np.array_equal(np.asarray(composite(gt, target, mask)), np.asarray(gt))


def test_feathering_whose_blur_would_reach_into_the_hole_is_refused():
    check_feathering("CompleteTarget", dilation=1, blur=1)
    check_feathering("CompleteTarget", dilation=2, blur=0)
    with pytest.raises(ConfigError, match=r"CompleteTarget: feather_blur \(2\) must be <= "):
        check_feathering("CompleteTarget", dilation=1, blur=2)
    with pytest.raises(ConfigError, match="GeometricBaseline: feather_dilation and feather_blur"):
        GeometricBaseline(feather_dilation=-1, feather_blur=0)
