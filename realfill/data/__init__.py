"""Scene loading, training masks, paired augmentation and the Lightning data module."""

from realfill.data.augment import (
    CropWindow,
    random_resized_crop,
    random_resized_crop_with_window,
    resize_shorter_side,
)
from realfill.data.datamodule import (
    HOLE_FILL_VALUE,
    SceneDataModule,
    SceneDataset,
    pad_to_canvas,
    resized_conditioning,
)
from realfill.data.masks import TrainingMaskConfig, random_training_mask
from realfill.data.scene import Scene, load_image, load_mask, load_scene

__all__ = [
    "CropWindow",
    "HOLE_FILL_VALUE",
    "Scene",
    "SceneDataModule",
    "SceneDataset",
    "TrainingMaskConfig",
    "load_image",
    "load_mask",
    "load_scene",
    "pad_to_canvas",
    "random_resized_crop",
    "random_resized_crop_with_window",
    "random_training_mask",
    "resize_shorter_side",
    "resized_conditioning",
]
