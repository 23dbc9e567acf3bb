"""Paired augmentation, the scene dataset and the data module, including the hole-leak proof."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import RandomSampler

from realfill.data import (
    HOLE_FILL_VALUE,
    SceneDataModule,
    SceneDataset,
    TrainingMaskConfig,
    random_resized_crop,
)
from realfill.data.datamodule import prepare_target
from realfill.errors import ConfigError, SceneError

RESOLUTION = 32
"""Training crop side for the synthetic scenes (their target is 40x56)."""


def position_image(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose channels are a binary pattern, the row and the column; and the pattern."""
    pattern = torch.rand(1, height, width, generator=torch.Generator().manual_seed(seed)) > 0.9
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    image = torch.stack([pattern[0].float(), rows, cols])
    return image, pattern.float()


# ---- paired augmentation --------------------------------------------------------------------


def test_crop_and_flip_move_image_and_mask_together() -> None:
    image, pattern = position_image(32, 50)
    flips = set()
    for seed in range(12):
        generator = torch.Generator().manual_seed(seed)
        out, (mask,) = random_resized_crop(image, [pattern], 32, 1.0, 0.5, generator)
        assert out.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
        rows, cols = out[1].long(), out[2].long()
        assert torch.equal(rows, rows[:, :1].expand(32, 32))  # a pure crop: no resampling
        assert torch.equal(rows[:, 0], rows[0, 0] + torch.arange(32))
        step = cols[0, 1] - cols[0, 0]
        assert step in (1, -1)
        flips.add(int(step))
        assert torch.equal(mask[0], pattern[0][rows, cols])
    assert flips == {1, -1}


def test_resized_mask_stays_aligned_with_image() -> None:
    image, pattern = position_image(45, 60)
    for seed in range(12):
        generator = torch.Generator().manual_seed(seed)
        out, (mask,) = random_resized_crop(image, [pattern], 32, 1.5, 0.5, generator)
        assert out.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        # Same resampling for both: a pixel is masked exactly where the pattern reached it.
        assert torch.equal(mask[0], (out[0] > 0).float())


def test_resize_range_follows_max_upscale() -> None:
    image, _ = position_image(40, 40)
    spans = set()
    for seed in range(30):
        out, _ = random_resized_crop(image, [], 32, 1.25, 0.0, torch.Generator().manual_seed(seed))
        spans.add(round(float(out[1, -1, 0] - out[1, 0, 0]), 1))  # source rows the crop spans
    # Shorter side 32..40 from 40: the 32-row crop covers 40*31/side source rows.
    assert min(spans) >= 31 * 40 / 40 - 0.5 and max(spans) <= 31 * 40 / 32 + 0.5
    assert len(spans) > 3


def test_downscaled_hole_is_conservative() -> None:
    image = torch.zeros(3, 64, 64)
    hole = torch.zeros(1, 64, 64)
    hole[0, 31, 31] = 1.0
    _, (small,) = random_resized_crop(image, [hole], 32, 1.0, 0.0, torch.Generator())
    assert small.sum() >= 1  # a single missing pixel survives a 2x downscale


def test_augmentation_rejects_misaligned_mask() -> None:
    with pytest.raises(ValueError, match="mask shape"):
        random_resized_crop(torch.zeros(3, 40, 40), [torch.zeros(1, 40, 41)], 32, 1.0, 0.0)


# ---- the data module ------------------------------------------------------------------------


def make_module(scene_dir: Path, **overrides) -> SceneDataModule:
    """A small, single-process data module for the synthetic scenes."""
    settings = {
        "resolution": RESOLUTION,
        "batch_size": 4,
        "num_workers": 0,
        "samples_per_epoch": 12,
    }
    return SceneDataModule(str(scene_dir), **(settings | overrides))


def epoch(module: SceneDataModule, seed: int) -> list[dict[str, torch.Tensor]]:
    """All batches of one epoch, with torch's RNG seeded first."""
    torch.manual_seed(seed)
    return list(module.train_dataloader())


def test_batch_shapes_dtypes_and_ranges(make_scene) -> None:
    module = make_module(make_scene(num_references=3))
    batches = epoch(module, seed=0)
    assert len(batches) == 3
    batch = batches[0]
    assert batch["pixels"].shape == (4, 3, RESOLUTION, RESOLUTION)
    assert batch["training_mask"].shape == (4, 1, RESOLUTION, RESOLUTION)
    assert batch["known_mask"].shape == (4, 1, RESOLUTION, RESOLUTION)
    assert batch["is_target"].shape == (4,) and batch["is_target"].dtype == torch.bool
    for batch in batches:
        assert batch["pixels"].dtype == torch.float32
        assert batch["pixels"].min() >= -1.0 and batch["pixels"].max() <= 1.0
        assert batch["pixels"].std() > 0.2  # noise images, not a constant
        for key in ("training_mask", "known_mask"):
            assert batch[key].dtype == torch.float32
            assert set(batch[key].unique().tolist()) <= {0.0, 1.0}
    assert sum(int(batch["is_target"].sum()) for batch in batches) == 3  # 12 samples / 4 images


def test_items_cycle_over_references_then_target(make_scene) -> None:
    dataset = make_module(make_scene(num_references=2), samples_per_epoch=9).train_dataset
    assert isinstance(dataset, SceneDataset)
    assert len(dataset) == 9 and dataset.num_images == 3
    assert [bool(dataset[i]["is_target"]) for i in range(9)] == [False, False, True] * 3


def test_an_example_at_its_photos_own_size_is_the_photo_not_a_resampling(make_scene) -> None:
    """Each example is resampled once, from the photo as loaded: drawn at the photo's own
    size it is an exact crop of it (a photo first stored at the largest training size, then
    resized again each step, came out blurred)."""
    scene_dir = make_scene(num_references=1)  # ref00.jpg: 36 x 52
    photo = torch.from_numpy(np.array(Image.open(scene_dir / "ref" / "ref00.jpg"))).float()
    photo = photo.permute(2, 0, 1) / 127.5 - 1.0
    dataset = make_module(scene_dir, resolution=36, max_upscale=1.2).train_dataset
    torch.manual_seed(0)
    exact = 0
    for _ in range(60):
        example = dataset[0]
        top, left = example["crop_top_left"].tolist()
        crop = photo[:, top : top + 36, left : left + 36]
        if crop.shape[-2:] == example["pixels"].shape[-2:]:
            exact += torch.allclose(example["pixels"], crop, atol=1e-6)
    assert exact >= 3  # sides 36..44 drawn: about one in nine at 36


def test_references_are_fully_known_with_random_masks(make_scene) -> None:
    dataset = make_module(make_scene()).train_dataset
    torch.manual_seed(0)
    masks = [dataset[i]["training_mask"] for i in (0, 1, 3, 4, 6, 7)]
    for index in (0, 1):
        assert bool((dataset[index]["known_mask"] == 1).all())
    assert len({tuple(mask.flatten().tolist()) for mask in masks}) > 1


def test_target_hole_is_zero_and_never_known(make_scene, default_hole) -> None:
    # Known target pixels are pure white; the hole holds noise. Any pixel the hole influenced
    # after resampling would be below white, so it must be marked unknown.
    target = np.full((*default_hole.shape, 3), 255, np.uint8)
    target[default_hole] = np.random.default_rng(0).integers(0, 256, (default_hole.sum(), 3))
    module = make_module(
        make_scene(target=target), max_upscale=1.5, hflip_probability=0.5, target_random_mask=False
    )
    dataset = module.train_dataset
    torch.manual_seed(0)
    for _ in range(20):
        item = dataset[dataset.num_images - 1]
        known = item["known_mask"][0].bool()
        assert item["is_target"]
        assert 0 < known.sum() < known.numel()
        assert bool((item["pixels"][:, ~known] == 0).all())
        assert bool((item["pixels"][:, known] > 1.0 - 1e-5).all())
        assert torch.equal(item["training_mask"], 1.0 - item["known_mask"])


def test_target_random_mask_adds_to_the_hole(make_scene) -> None:
    """By default the target is trained like a reference (random masks), its hole always
    included in the mask: the model learns to fill the target's known content from context."""
    dataset = make_module(make_scene()).train_dataset
    torch.manual_seed(0)
    grew = 0
    for _ in range(10):
        item = dataset[dataset.num_images - 1]
        hole = 1.0 - item["known_mask"]
        assert bool((item["training_mask"] >= hole).all())
        grew += int(bool((item["training_mask"] > hole).any()))
    assert grew > 0


@pytest.mark.parametrize(
    "options",
    [{"target_random_mask": False}, {"target_random_mask": True, "hflip_probability": 0.5}],
)
def test_hole_content_cannot_leak_into_batches(make_scene, default_hole, default_target, options):
    """Two scenes that differ only inside the target's hole give identical batches."""
    other_target = default_target.copy()
    other_target[default_hole] = 255 - other_target[default_hole]
    first = make_module(make_scene(name="a"), max_upscale=1.3, **options)
    second = make_module(make_scene(name="b", target=other_target), max_upscale=1.3, **options)
    first_batches, second_batches = epoch(first, seed=1), epoch(second, seed=1)
    assert sum(int(batch["is_target"].sum()) for batch in first_batches) > 0
    for one, two in zip(first_batches, second_batches, strict=True):
        assert one.keys() == two.keys()
        for key in one:
            assert torch.equal(one[key], two[key]), key


def test_prepared_target_is_filled_before_reducing(default_hole, default_target) -> None:
    """The hole is filled before a large target is reduced, so the stored target never holds
    it; a target less than twice the largest training side is kept as loaded."""
    other_target = default_target.copy()
    other_target[default_hole] = 255 - other_target[default_hole]
    mask = Image.fromarray(default_hole.astype(np.uint8) * 255)
    height, width = default_target.shape[:2]
    for shorter_side, factor in ((40, 1), (50, 1), (21, 1), (20, 2), (13, 3)):
        pixels, hole = prepare_target(Image.fromarray(default_target), mask, shorter_side)
        other_pixels, other_hole = prepare_target(Image.fromarray(other_target), mask, shorter_side)
        assert pixels.dtype == torch.uint8 and hole.dtype == torch.bool
        assert pixels.shape[-2:] == (-(-height // factor), -(-width // factor))
        assert hole.shape[-2:] == pixels.shape[-2:]
        assert torch.equal(pixels, other_pixels) and torch.equal(hole, other_hole)
    kept, hole = prepare_target(Image.fromarray(default_target), mask, 40)
    assert torch.equal(hole[0], torch.from_numpy(default_hole))
    assert bool((kept[:, hole[0]] == round(HOLE_FILL_VALUE)).all())
    assert torch.equal(
        kept[:, ~hole[0]], torch.from_numpy(default_target).permute(2, 0, 1)[:, ~hole[0]]
    )


def test_differences_outside_the_hole_do_reach_batches(make_scene, default_hole, default_target):
    """Control for the leak test: the same change outside the hole is visible."""
    other_target = default_target.copy()
    other_target[~default_hole] = 255 - other_target[~default_hole]
    first = make_module(make_scene(name="a"))
    second = make_module(make_scene(name="b", target=other_target))
    first_pixels = torch.cat([batch["pixels"] for batch in epoch(first, seed=1)])
    second_pixels = torch.cat([batch["pixels"] for batch in epoch(second, seed=1)])
    assert not torch.equal(first_pixels, second_pixels)


def test_same_seed_same_epoch_and_different_seed_differs(make_scene) -> None:
    module = make_module(make_scene())
    one, two, three = epoch(module, 3), epoch(module, 3), epoch(module, 4)
    assert all(torch.equal(a["pixels"], b["pixels"]) for a, b in zip(one, two, strict=True))
    assert not all(torch.equal(a["pixels"], c["pixels"]) for a, c in zip(one, three, strict=True))


def test_dataloader_settings(make_scene) -> None:
    module = make_module(make_scene(), num_workers=2, batch_size=3)
    loader = module.train_dataloader()
    assert loader.batch_size == 3 and loader.drop_last
    assert isinstance(loader.sampler, RandomSampler)
    assert loader.num_workers == 2 and loader.persistent_workers
    assert loader.pin_memory == torch.cuda.is_available()
    assert not make_module(make_scene(name="b")).train_dataloader().persistent_workers


def test_worker_processes_produce_batches(make_scene) -> None:
    module = make_module(make_scene(), num_workers=1, samples_per_epoch=4)
    batches = list(module.train_dataloader())
    assert len(batches) == 1 and batches[0]["pixels"].shape == (4, 3, RESOLUTION, RESOLUTION)


def test_bad_scene_fails_at_construction(make_scene) -> None:
    root = make_scene()
    (root / "target" / "mask.png").unlink()
    with pytest.raises(SceneError, match="mask.png"):
        make_module(root)


@pytest.mark.parametrize(
    "overrides",
    [
        {"resolution": 0},
        {"batch_size": 0},
        {"num_workers": -1},
        {"max_upscale": 0.9},
        {"hflip_probability": 1.5},
        {"samples_per_epoch": 3, "batch_size": 4},
    ],
)
def test_bad_settings_raise_value_error(make_scene, overrides: dict) -> None:
    with pytest.raises(ValueError):
        make_module(make_scene(), **overrides)


def test_an_epoch_too_short_for_a_batch_on_every_process_is_refused(make_scene) -> None:
    """Two processes split 6 examples 3 and 3: no batch of 4 on either, nothing trained."""
    module = make_module(make_scene(), samples_per_epoch=6)
    module.trainer = SimpleNamespace(world_size=2)
    with pytest.raises(
        ConfigError, match=r"samples_per_epoch \(6\) gives each of the 2 processes 3"
    ):
        module.setup("fit")
    module.trainer = SimpleNamespace(world_size=1)
    module.setup("fit")


def test_masks_config_is_copied(make_scene) -> None:
    config = TrainingMaskConfig(invert_probability=0.2)
    module = make_module(make_scene(), masks=config)
    config.invert_probability = 0.9
    assert module.masks.invert_probability == 0.2


def test_real_scene_batch(real_scene_dir: Path) -> None:
    module = SceneDataModule(
        str(real_scene_dir), resolution=64, batch_size=4, num_workers=0, samples_per_epoch=8
    )
    assert module.scene.name == real_scene_dir.name
    batches = epoch(module, seed=0)
    assert len(batches) == 2
    for batch in batches:
        assert batch["pixels"].shape == (4, 3, 64, 64)
        target_known = batch["known_mask"][batch["is_target"]]
        assert bool((target_known == 0).any())


def test_jsonargparse_overrides_nested_mask_config(make_scene) -> None:
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(SceneDataModule, "data")
    config = parser.parse_args(
        [
            f"--data.scene_dir={make_scene()}",
            "--data.masks.invert_probability=0.3",
            "--data.resolution=32",
            "--data.samples_per_epoch=16",
        ]
    )
    module = parser.instantiate(config).data
    assert isinstance(module, SceneDataModule)
    assert module.masks.invert_probability == 0.3
    assert module.masks.max_rectangles == TrainingMaskConfig().max_rectangles
    assert module.resolution == 32
