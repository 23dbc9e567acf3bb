"""Draw candidates: sample completions of a scene's target and composite each onto it."""

from typing import Any, Protocol

from PIL import Image

from realfill.data import Scene
from realfill.selection.compositing import FeatheredComposite
from realfill.selection.settings import SamplingSettings


class Inpainter(Protocol):
    """What sampling needs of a model (`RealFillModule` is one): raw completions by seed."""

    def generate(
        self, target: Image.Image, mask: Image.Image, seeds: list[int], **sampling: Any
    ) -> list[Image.Image]: ...


def composited_completions(
    model: Inpainter,
    scene: Scene,
    seeds: list[int],
    resolution: int,
    settings: SamplingSettings,
    progress: bool = True,
) -> list[Image.Image]:
    """Completions of the scene's target, one per seed, each composited onto the target with a
    feathered mask, sampled at `resolution` as `settings` say."""
    raw = model.generate(
        scene.target,
        scene.mask,
        seeds,
        resolution=resolution,
        progress=progress,
        **settings.generate_arguments(),
    )
    paste = FeatheredComposite(
        scene.target, scene.mask, settings.feather_dilation, settings.feather_blur
    )
    return [paste(image) for image in raw]
