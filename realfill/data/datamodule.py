"""Training data for one scene: augmented references and target, each with a training mask.

The scene is decoded once. Each step resamples an image once, to its random size: a photo is
kept as it is, or, if its shorter side is at least twice the largest the step may pick
(ceil(resolution * max_upscale)), box-reduced once by an integer factor (`reduce_image`), which
averages pixels without blurring them. The target's missing pixels are replaced by mid grey
(`HOLE_FILL_VALUE`, 0.0 after scaling to [-1, 1]) before any resizing, and after augmentation
every pixel the (conservatively resized) hole touches is set to exactly 0.0, so the unknown
content can reach neither model nor loss.

Each example also says where its crop came from (`original_size`, `crop_top_left`), for base
models conditioned on it (SDXL's size and crop micro-conditioning).
"""

from __future__ import annotations

import dataclasses

import lightning
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from realfill.data.augment import (
    random_resized_crop_with_window,
    reduce_image,
    reduction_factor,
    resize_image,
    resize_mask,
    upscaled_side,
)
from realfill.data.masks import TrainingMaskConfig, random_training_mask
from realfill.data.scene import Scene, load_scene
from realfill.errors import ConfigError

PIXEL_SCALE = 127.5
"""uint8 values v map to v / PIXEL_SCALE - 1, i.e. 0..255 onto -1..1."""

HOLE_FILL_VALUE = 127.5
"""Value (on the 0..255 scale) written into the target's hole before resizing: 0.0 in [-1, 1]."""


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 [C, H, W] tensor."""
    array = np.array(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Round a float 0..255 tensor to uint8, clamping resampling over/undershoot."""
    return image.round().clamp(0, 255).to(torch.uint8)


def prepare_reference(image: Image.Image, shorter_side: int) -> torch.Tensor:
    """Decode a reference once to uint8 [3, H, W], box-reduced by `reduction_factor` so that
    its shorter side stays at least ``shorter_side``: as loaded unless it is twice as long."""
    pixels = pil_to_tensor(image)
    factor = reduction_factor(*pixels.shape[-2:], shorter_side)
    return pixels if factor == 1 else to_uint8(reduce_image(pixels.float(), factor))


def filled_target(target: Image.Image, mask: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """The target as float 0..255 [3, H, W] with its hole set to `HOLE_FILL_VALUE`, and the
    hole as a 0/1 float [1, H, W] mask: what may be resampled without the hole's content."""
    hole = (pil_to_tensor(mask) > 0).float()
    return pil_to_tensor(target).float().masked_fill(hole.bool(), HOLE_FILL_VALUE), hole


def prepare_target(
    target: Image.Image, mask: Image.Image, shorter_side: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill the target's hole with `HOLE_FILL_VALUE`, then reduce it and its hole together as
    `prepare_reference` reduces a reference.

    Returns the uint8 [3, H, W] target and the bool [1, H, W] hole (True = missing); a reduced
    pixel that averages any missing source pixel counts as missing.
    """
    pixels, hole = filled_target(target, mask)
    factor = reduction_factor(*pixels.shape[-2:], shorter_side)
    return to_uint8(reduce_image(pixels, factor)), reduce_image(hole, factor) > 0


def resized_conditioning(
    target: Image.Image, mask: Image.Image, size: tuple[int, int], canvas: tuple[int, int]
) -> tuple[Image.Image, Image.Image]:
    """The target and its mask at ``size`` (width, height) for sampling, prepared as training
    prepares the target: the hole filled before resampling and grown to every pixel it
    touches, so that none of its content reaches the model's conditioning. Both are then padded
    right and bottom to ``canvas`` (the sampling size the denoiser takes) by repeating their
    last column and row, so a hole at an edge extends into the padding (`pad_to_canvas`)."""
    pixels, hole = filled_target(target, mask)
    width, height = size
    pixels, hole = resize_image(pixels, (height, width)), resize_mask(hole, (height, width))
    pixels, hole = pad_to_canvas(pixels, canvas), pad_to_canvas(hole, canvas)
    image = Image.fromarray(to_uint8(pixels).permute(1, 2, 0).numpy())
    return image, Image.fromarray(to_uint8(hole[0] * 255).numpy())


def pad_to_canvas(image: torch.Tensor, canvas: tuple[int, int]) -> torch.Tensor:
    """A float [C, H, W] image padded right and bottom to ``canvas`` (width, height) with
    copies of its last column and row: at most a few pixels of plain continuation, which the
    sampled image is cropped of."""
    width, height = canvas
    right, bottom = width - image.shape[-1], height - image.shape[-2]
    if right == bottom == 0:
        return image
    return torch.nn.functional.pad(image[None], (0, right, 0, bottom), mode="replicate")[0]


class SceneDataset(Dataset):
    """``samples_per_epoch`` random training examples cycling over references, then the target.

    Item ``i`` uses image ``i % num_images`` (the target is the last image) and draws its random
    augmentation and training mask from torch's default RNG, which Lightning seeds per worker.
    """

    def __init__(
        self,
        references: list[torch.Tensor],
        target: torch.Tensor,
        target_hole: torch.Tensor,
        resolution: int,
        max_upscale: float,
        hflip_probability: float,
        masks: TrainingMaskConfig,
        target_random_mask: bool,
        samples_per_epoch: int,
        original_sizes: list[tuple[int, int]] | None = None,
    ) -> None:
        """Hold the decoded uint8 [3, H, W] images (large ones reduced, see `prepare_reference`)
        and the target's bool [1, H, W] hole.

        Args:
            references: Decoded reference images, uint8 [3, H, W].
            target: Decoded target, uint8 [3, H, W], hole already filled.
            target_hole: Bool [1, H, W], True where the target is missing.
            resolution: Side of the square training crops.
            max_upscale: The crop's source is scaled to a shorter side in
                [resolution, ceil(resolution * max_upscale)].
            hflip_probability: Probability of mirroring an example left to right.
            masks: Distribution of the random training masks.
            target_random_mask: Unite a random training mask with the target's own hole.
            samples_per_epoch: Length of the dataset.
            original_sizes: (height, width) of each image as loaded, before any resizing,
                references then target; default the sizes held.
        """
        if target_hole.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"hole {tuple(target_hole.shape)} != target {tuple(target.shape)}")
        self.images = [*references, target]
        if original_sizes is None:
            original_sizes = [tuple(image.shape[-2:]) for image in self.images]
        if len(original_sizes) != len(self.images):
            raise ValueError(f"{len(original_sizes)} original sizes for {len(self.images)} images")
        self.original_sizes = [(int(h), int(w)) for h, w in original_sizes]
        self.target_hole = target_hole
        self.resolution = resolution
        self.max_upscale = max_upscale
        self.hflip_probability = hflip_probability
        self.masks = masks
        self.target_random_mask = target_random_mask
        self.samples_per_epoch = samples_per_epoch

    @classmethod
    def from_scene(
        cls,
        scene: Scene,
        resolution: int,
        max_upscale: float,
        hflip_probability: float,
        masks: TrainingMaskConfig,
        target_random_mask: bool,
        samples_per_epoch: int,
    ) -> SceneDataset:
        """Decode (and reduce, if large) every image of ``scene`` once and build the dataset."""
        shorter_side = upscaled_side(resolution, max_upscale)
        references = [prepare_reference(image, shorter_side) for image in scene.references]
        target, hole = prepare_target(scene.target, scene.mask, shorter_side)
        originals = [(image.height, image.width) for image in [*scene.references, scene.target]]
        return cls(
            references,
            target,
            hole,
            resolution,
            max_upscale,
            hflip_probability,
            masks,
            target_random_mask,
            samples_per_epoch,
            originals,
        )

    @property
    def num_images(self) -> int:
        """References plus the target."""
        return len(self.images)

    def __len__(self) -> int:
        """``samples_per_epoch``: the number of examples an epoch draws."""
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One augmented example.

        Keys: ``pixels`` (float [3, R, R] in [-1, 1]), ``training_mask`` (1 = generate),
        ``known_mask`` (0 over the target's hole), ``is_target``, ``original_size`` (int64
        (height, width) of the image as loaded) and ``crop_top_left`` (int64 (top, left) of the
        crop in the randomly resized image, see `CropWindow`).
        """
        image_index = index % self.num_images
        is_target = image_index == self.num_images - 1
        pixels = self.images[image_index].float() / PIXEL_SCALE - 1.0
        holes = [self.target_hole.float()] if is_target else []
        pixels, holes, crop = random_resized_crop_with_window(
            pixels, holes, self.resolution, self.max_upscale, self.hflip_probability
        )
        size = (self.resolution, self.resolution)
        if is_target:
            hole = holes[0]
            training_mask = hole
            if self.target_random_mask:
                training_mask = torch.maximum(hole, random_training_mask(*size, self.masks))
            pixels = torch.where(hole.bool(), 0.0, pixels.clamp(-1.0, 1.0))
        else:
            hole = torch.zeros(1, *size)
            training_mask = random_training_mask(*size, self.masks)
            pixels = pixels.clamp(-1.0, 1.0)
        return {
            "pixels": pixels,
            "training_mask": training_mask,
            "known_mask": 1.0 - hole,
            "is_target": torch.tensor(is_target),
            "original_size": torch.tensor(self.original_sizes[image_index], dtype=torch.int64),
            "crop_top_left": torch.tensor((crop.top, crop.left), dtype=torch.int64),
        }


class SceneDataModule(lightning.LightningDataModule):
    """Loads one scene at construction (so a bad scene fails before the model loads)."""

    def __init__(
        self,
        scene_dir: str,
        resolution: int = 512,
        batch_size: int = 16,
        num_workers: int = 2,
        max_upscale: float = 1.125,
        hflip_probability: float = 0.0,
        # A dataclass default is what jsonargparse needs to expose --data.masks.<field>; it is
        # copied below, so the shared default instance is never mutated.
        masks: TrainingMaskConfig = TrainingMaskConfig(),  # noqa: B008
        target_random_mask: bool = True,
        samples_per_epoch: int = 1024,
        max_references: int = 5,
    ) -> None:
        """Load and validate the scene; the images are decoded for training on first use.

        Args:
            scene_dir: Scene folder with ref/ (reference images) and target/target.png,
                target/mask.png (white = missing) and optionally target/gt.png.
            resolution: Side of the square training crops, in pixels.
            batch_size: Examples per batch on each device.
            num_workers: DataLoader worker processes (0 = load in the main process).
            max_upscale: Each example scales its image so the shorter side is a random length in
                [resolution, ceil(resolution * max_upscale)] before a random square crop.
            hflip_probability: Probability of mirroring an example left to right (0 keeps the
                scene's handedness, e.g. text, as in the public implementation).
            masks: Distribution of the random training masks (references, and the target
                with `target_random_mask`).
            target_random_mask: Draw the target's training mask like a reference's, united
                with its hole (the hole also takes the loss weight away), so the target teaches
                filling its known regions as the references do. False: the target's training
                mask is exactly its hole, as the reference implementation trains it (its loss
                then covers only the pixels it is shown). Neither is the diffusers research
                port, which gives the target random masks without its hole.
            samples_per_epoch: Examples per epoch, cycling over the references and the target.
            max_references: More references than this only trigger a warning (paper: at most 5).
        """
        super().__init__()
        if resolution < 1 or batch_size < 1 or num_workers < 0:
            raise ConfigError(
                "data: need resolution >= 1, batch_size >= 1 and num_workers >= 0, got "
                f"{resolution}, {batch_size}, {num_workers}"
            )
        if max_upscale < 1.0 or not 0.0 <= hflip_probability <= 1.0:
            raise ConfigError(
                "data: need max_upscale >= 1 and hflip_probability in [0, 1], got "
                f"{max_upscale}, {hflip_probability}"
            )
        if samples_per_epoch < batch_size:
            raise ConfigError(
                f"data.samples_per_epoch ({samples_per_epoch}) must be >= data.batch_size "
                f"({batch_size}): incomplete batches are dropped"
            )
        self.scene_dir = scene_dir
        self.resolution = resolution
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.max_upscale = max_upscale
        self.hflip_probability = hflip_probability
        self.masks = dataclasses.replace(masks)
        self.target_random_mask = target_random_mask
        self.samples_per_epoch = samples_per_epoch
        self.scene: Scene = load_scene(scene_dir, max_references=max_references)
        self._dataset: SceneDataset | None = None

    @property
    def train_dataset(self) -> SceneDataset:
        """The training dataset, decoding the scene's images on first access."""
        if self._dataset is None:
            self._dataset = SceneDataset.from_scene(
                self.scene,
                resolution=self.resolution,
                max_upscale=self.max_upscale,
                hflip_probability=self.hflip_probability,
                masks=self.masks,
                target_random_mask=self.target_random_mask,
                samples_per_epoch=self.samples_per_epoch,
            )
        return self._dataset

    def setup(self, stage: str) -> None:
        """Prepare the dataset once per process before training; refuse an epoch too short to
        give every process a whole batch (each gets ceil(samples_per_epoch / processes)
        examples, and incomplete batches are dropped: the fit would train nothing)."""
        if stage == "fit":
            processes = self.trainer.world_size if self.trainer is not None else 1
            per_process = -(-self.samples_per_epoch // processes)
            if per_process < self.batch_size:
                raise ConfigError(
                    f"data.samples_per_epoch ({self.samples_per_epoch}) gives each of the "
                    f"{processes} processes {per_process} examples, fewer than data.batch_size "
                    f"({self.batch_size}): no complete batch to train on"
                )
            _ = self.train_dataset

    def train_dataloader(self) -> DataLoader:
        """Shuffled, incomplete-batch-dropping loader of ``batch_size`` examples."""
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )
