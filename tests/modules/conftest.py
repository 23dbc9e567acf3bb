"""The base-model plug-ins under test: each is listed once in `PLUGINS` and gets every test
that takes the `plugin` or `base` fixture (training, the masked-loss invariance, sampling and
compositing, LoRA export to the stock diffusers pipeline)."""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from diffusers import (
    DiffusionPipeline,
    FluxFillPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionXLInpaintPipeline,
)

from realfill.modules import (
    InpaintingBaseModel,
    TinyFluxFillInpainting,
    TinyStableDiffusionInpainting,
    TinyStableDiffusionXLInpainting,
)


@dataclass(frozen=True)
class Plugin:
    """A tiny plug-in and the stock diffusers pipeline its LoRA must load into."""

    name: str
    build: Callable[[], InpaintingBaseModel]
    """Builds the tiny, randomly initialised model (the same weights every call)."""
    stock_pipeline: type[DiffusionPipeline]
    """The stock pipeline class: `from_pretrained(base)` then `load_lora_weights(lora)`."""
    stock_load_arguments: dict = field(default_factory=dict)
    """Extra keyword arguments of the stock pipeline's `from_pretrained`."""


PLUGINS = [
    Plugin(
        "sd",
        lambda: TinyStableDiffusionInpainting(seed=0),
        StableDiffusionInpaintPipeline,
        {"safety_checker": None},
    ),
    Plugin(
        "sdxl",
        lambda: TinyStableDiffusionXLInpainting(seed=0),
        StableDiffusionXLInpaintPipeline,
        {"add_watermarker": False},
    ),
    Plugin(
        "flux_fill",
        lambda: TinyFluxFillInpainting(seed=0),
        FluxFillPipeline,
    ),
]


@pytest.fixture(params=PLUGINS, ids=[plugin.name for plugin in PLUGINS])
def plugin(request: pytest.FixtureRequest) -> Plugin:
    return request.param


@pytest.fixture
def base(plugin: Plugin) -> InpaintingBaseModel:
    return plugin.build()
