"""Each example reports where its crop came from: original size and crop top-left (SDXL)."""

from __future__ import annotations

import torch

from realfill.data import SceneDataModule, random_resized_crop, random_resized_crop_with_window
from realfill.data.augment import resize_shorter_side

RESOLUTION = 32


def position_image(height: int, width: int) -> torch.Tensor:
    """A float [2, H, W] image whose channels are each pixel's row and column."""
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    return torch.stack([rows, cols])


def test_the_window_locates_the_crop_in_the_resized_and_mirrored_image() -> None:
    image = position_image(45, 60)
    flips = set()
    for seed in range(16):
        generator = torch.Generator().manual_seed(seed)
        out, _, crop = random_resized_crop_with_window(image, [], RESOLUTION, 1.5, 0.5, generator)
        resized, _ = resize_shorter_side(image, [], min(crop.resized_size))
        assert tuple(resized.shape[-2:]) == crop.resized_size
        if crop.flipped:
            resized = resized.flip(-1)
        window = resized[:, crop.top : crop.top + RESOLUTION, crop.left : crop.left + RESOLUTION]
        assert torch.equal(out, window)
        flips.add(crop.flipped)
    assert flips == {True, False}


def test_the_window_variant_draws_the_same_crop_as_the_plain_one() -> None:
    image = position_image(40, 52)
    plain, _ = random_resized_crop(
        image, [], RESOLUTION, 1.25, 0.5, torch.Generator().manual_seed(3)
    )
    with_window, _, _ = random_resized_crop_with_window(
        image, [], RESOLUTION, 1.25, 0.5, torch.Generator().manual_seed(3)
    )
    assert torch.equal(plain, with_window)


def test_batches_carry_original_size_and_crop_top_left(make_scene) -> None:
    scene_dir = make_scene(num_references=2)
    module = SceneDataModule(
        str(scene_dir), resolution=RESOLUTION, batch_size=3, num_workers=0, samples_per_epoch=3
    )
    originals = {
        (image.height, image.width) for image in [*module.scene.references, module.scene.target]
    }
    dataset = module.train_dataset
    for index in range(dataset.num_images):
        item = dataset[index]
        image = dataset.images[index]
        assert tuple(item["original_size"].tolist()) in originals
        assert item["original_size"].dtype == item["crop_top_left"].dtype == torch.int64
        top, left = item["crop_top_left"].tolist()
        # max_upscale 1.125 from the pre-resized image: the crop lies inside it
        assert 0 <= top <= image.shape[-2] - RESOLUTION
        assert 0 <= left <= image.shape[-1] - RESOLUTION
    target_item = dataset[dataset.num_images - 1]
    assert tuple(target_item["original_size"].tolist()) == (
        module.scene.target.height,
        module.scene.target.width,
    )
    batch = next(iter(module.train_dataloader()))
    assert batch["original_size"].shape == batch["crop_top_left"].shape == (3, 2)
