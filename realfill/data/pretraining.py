"""Images for pretraining the small base model: photographs that ship with scikit-image, seen
through random crops, scales and flips, and procedural pictures of shapes as a complement.

Scikit-image's stereo motorcycle is left out: the example scene and the benchmark are built from
it, and a base model that had seen it would make the evaluation meaningless.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from realfill.errors import ConfigError

BUNDLED_PHOTOS = {
    "astronaut": "an astronaut",
    "brick": "a brick wall",
    "camera": "a man with a camera",
    "chelsea": "a cat",
    "clock": "a clock",
    "coffee": "a cup of coffee",
    "coins": "coins",
    "colorwheel": "a colour wheel",
    "grass": "grass",
    "gravel": "gravel",
    "hubble_deep_field": "galaxies",
    "immunohistochemistry": "stained tissue",
    "moon": "the moon",
    "page": "a page of text",
    "retina": "a retina",
    "rocket": "a rocket",
    "text": "text",
}
"""scikit-image's bundled photographs (no download needed) and a caption for each."""

EXCLUDED = ("stereo_motorcycle",)
"""Bundled images never used for pretraining: the evaluation scenes are built from them."""

SHAPES_CAPTION = "a drawing of shapes"
"""Caption of the procedural pictures."""


def bundled_photos() -> dict[str, torch.Tensor]:
    """Each photograph as a uint8 [3, H, W] tensor (grayscale repeated), by caption."""
    import skimage.data

    photos = {}
    for name, caption in BUNDLED_PHOTOS.items():
        assert name not in EXCLUDED
        try:
            array = np.asarray(getattr(skimage.data, name)())
        except (ImportError, OSError) as error:  # a build of scikit-image without its data
            raise ConfigError(
                f"scikit-image cannot load its bundled image {name!r}: {error}"
            ) from None
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        photos[caption] = torch.from_numpy(np.ascontiguousarray(array[:, :, :3])).permute(2, 0, 1)
    return photos


def random_view(
    image: torch.Tensor, size: int, max_zoom_out: float, generator: torch.Generator
) -> torch.Tensor:
    """A random square crop of a uint8 [3, H, W] image, resampled to `size` and flipped half the
    time, as float [3, size, size] in [-1, 1]. The crop side is drawn log-uniformly between
    `size` (full detail) and the image's shorter side divided by nothing more than
    `max_zoom_out` times, so the model sees both detail and whole scenes."""
    height, width = image.shape[-2:]
    shortest = min(height, width)
    smallest = min(size, shortest)
    largest = max(smallest, min(shortest, round(size * max_zoom_out)))
    log_side = math.log(smallest) + torch.rand((), generator=generator).item() * math.log(
        largest / smallest
    )
    side = min(shortest, max(1, round(math.exp(log_side))))
    top = int(torch.randint(0, height - side + 1, (), generator=generator))
    left = int(torch.randint(0, width - side + 1, (), generator=generator))
    crop = image[:, top : top + side, left : left + side].float().unsqueeze(0)
    view = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)[0]
    if torch.rand((), generator=generator).item() < 0.5:
        view = view.flip(-1)
    return (view / 127.5 - 1.0).clamp(-1.0, 1.0)


def shapes_picture(size: int, generator: torch.Generator) -> torch.Tensor:
    """A procedural picture in [-1, 1]: a two-colour gradient under 3-12 random rectangles and
    ellipses with soft edges, [3, size, size]."""
    axis = torch.linspace(0.0, 1.0, size)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    angle = torch.rand((), generator=generator) * 2 * math.pi
    ramp = (xs * torch.cos(angle) + ys * torch.sin(angle)).clamp(0, 1)
    start, end = torch.rand(2, 3, 1, 1, generator=generator)
    picture = start * (1 - ramp) + end * ramp
    for _ in range(int(torch.randint(3, 13, (), generator=generator))):
        cy, cx, ry, rx = torch.rand(4, generator=generator) * torch.tensor([1, 1, 0.3, 0.3])
        ry, rx = ry + 0.03, rx + 0.03
        if torch.rand((), generator=generator) < 0.5:
            distance = torch.maximum((ys - cy).abs() / ry, (xs - cx).abs() / rx)
        else:
            distance = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2
        coverage = (1.0 - distance).mul(size * 0.05).clamp(0, 1)
        colour = torch.rand(3, 1, 1, generator=generator)
        picture = picture * (1 - coverage) + colour * coverage
    return picture * 2.0 - 1.0


def pretraining_batch(
    photos: dict[str, torch.Tensor],
    batch_size: int,
    size: int,
    generator: torch.Generator,
    shapes_probability: float = 0.2,
    max_zoom_out: float = 4.0,
) -> tuple[torch.Tensor, list[str]]:
    """`batch_size` random training images [B, 3, size, size] in [-1, 1] and their captions:
    views of the bundled photographs, or procedural shapes with `shapes_probability`."""
    captions = list(photos)
    images, prompts = [], []
    for _ in range(batch_size):
        if torch.rand((), generator=generator).item() < shapes_probability:
            images.append(shapes_picture(size, generator))
            prompts.append(SHAPES_CAPTION)
        else:
            caption = captions[int(torch.randint(0, len(captions), (), generator=generator))]
            images.append(random_view(photos[caption], size, max_zoom_out, generator))
            prompts.append(f"a photo of {caption}")
    return torch.stack(images), prompts
