"""The metric math on hand-made images: best values, a known corruption, masking."""

import math

import pytest
import torch

from realfill.evaluation.metrics import (
    cosine_similarity,
    mask_box,
    masked_perceptual,
    masked_perceptual_map,
    masked_psnr,
    masked_ssim,
)


def images(seed: int = 0, size: tuple[int, int] = (48, 64)) -> tuple[torch.Tensor, torch.Tensor]:
    """A random image in [0.2, 0.8] (room for +-0.1 without clipping) and a rectangular mask."""
    generator = torch.Generator().manual_seed(seed)
    image = 0.2 + 0.6 * torch.rand(1, 3, *size, generator=generator)
    mask = torch.zeros(size, dtype=torch.bool)
    mask[10:30, 20:50] = True
    return image, mask


def mean_abs(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """A stand-in perceptual distance: mean absolute difference per image."""
    return (first - second).abs().flatten(1).mean(dim=1)


def test_identical_images_get_the_best_value():
    image, mask = images()
    assert masked_psnr(image, image, mask) == math.inf
    assert masked_ssim(image, image, mask) == pytest.approx(1.0, abs=1e-6)
    assert masked_perceptual(image, image, mask, mean_abs) == 0.0


def test_a_known_corruption_gives_the_expected_psnr():
    image, mask = images()
    corrupted = image.clone()
    corrupted[..., mask] += 0.1  # MSE 0.01 over the masked pixels: PSNR 20 dB
    assert masked_psnr(corrupted, image, mask) == pytest.approx(20.0, abs=1e-4)
    corrupted[..., mask] -= 0.2  # the sign does not matter
    assert masked_psnr(corrupted, image, mask) == pytest.approx(20.0, abs=1e-4)
    assert masked_ssim(corrupted + 0.0, image, mask) < 1.0


def test_pixels_outside_the_mask_are_ignored():
    image, mask = images()
    noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(1))
    prediction = torch.where(mask, image + 0.05 * noise, image)
    scrambled = torch.where(mask, prediction, torch.rand(image.shape))  # only outside differs
    for metric in (masked_psnr, masked_ssim):
        assert metric(scrambled, image, mask) == pytest.approx(metric(prediction, image, mask))
    assert masked_perceptual(scrambled, image, mask, mean_abs) == pytest.approx(
        masked_perceptual(prediction, image, mask, mean_abs)
    )
    assert masked_psnr(prediction, image, mask) < math.inf  # the inside still counts


def test_ssim_drops_with_the_damage_inside_the_mask():
    image, mask = images()
    mild, strong = image.clone(), image.clone()
    mild[..., mask] = image[..., mask] * 0.9
    strong[..., mask] = 0.5
    assert 1.0 > masked_ssim(mild, image, mask) > masked_ssim(strong, image, mask)


def test_the_perceptual_crop_is_the_mask_box_grown_to_a_minimum_side():
    mask = torch.zeros(100, 120, dtype=torch.bool)
    mask[40:80, 10:90] = True
    assert mask_box(mask, min_side=8) == (40, 80, 10, 90)
    mask = torch.zeros(100, 120, dtype=torch.bool)
    mask[0:2, 118:120] = True  # a corner speck: grown, kept inside the image
    assert mask_box(mask, min_side=32) == (0, 32, 88, 120)


def test_an_empty_mask_or_mismatched_shapes_are_errors():
    image, mask = images()
    with pytest.raises(ValueError, match="empty"):
        masked_psnr(image, image, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="shapes"):
        masked_ssim(image, image[..., :-1], mask)


def test_cosine_similarity():
    vector = torch.tensor([1.0, 2.0, -3.0])
    assert cosine_similarity(vector, 2 * vector) == pytest.approx(1.0)
    assert cosine_similarity(vector, -vector) == pytest.approx(-1.0)
    assert cosine_similarity(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == 0.0


def abs_map(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """A stand-in per-pixel perceptual distance: absolute difference, mean over channels."""
    return (first - second).abs().mean(dim=1, keepdim=True)


def test_the_papers_lpips_averages_its_map_over_the_masked_pixels_only():
    """The paper computes its low-level metrics inside the mask: the map's mean there, whatever
    the prediction does outside, and undiluted by the known pixels, unlike the box crop."""
    truth, mask = images()
    damaged = truth.clone()
    damaged[..., mask] += 0.1
    assert masked_perceptual_map(damaged, truth, mask, abs_map) == pytest.approx(0.1, abs=1e-6)
    elsewhere = damaged.clone()
    elsewhere[..., ~mask] = 0.0
    assert masked_perceptual_map(elsewhere, truth, mask, abs_map) == pytest.approx(0.1, abs=1e-6)
    outpainting = torch.ones_like(mask)
    outpainting[8:40, 8:56] = False  # a border to fill around a known centre
    border = truth.clone()
    border[..., outpainting] += 0.1
    box = masked_perceptual(border, truth, outpainting, mean_abs)
    assert box < 0.06 < masked_perceptual_map(border, truth, outpainting, abs_map)
