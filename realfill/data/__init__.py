"""Scene loading, training masks, paired augmentation and the Lightning data module."""

from realfill.data.augment import random_resized_crop, resize_shorter_side
from realfill.data.datamodule import HOLE_FILL_VALUE, SceneDataModule, SceneDataset
from realfill.data.masks import TrainingMaskConfig, random_training_mask
from realfill.data.scene import Scene, load_image, load_mask, load_scene

__all__ = [
    "HOLE_FILL_VALUE",
    "Scene",
    "SceneDataModule",
    "SceneDataset",
    "TrainingMaskConfig",
    "load_image",
    "load_mask",
    "load_scene",
    "random_resized_crop",
    "random_training_mask",
    "resize_shorter_side",
]
