"""The base-model plug-ins under test: the tiny twin of every family, found in the
`realfill/modules/tiny*.py` modules, gets every test that takes the `plugin` or `base` fixture
(training, the masked-loss invariance, sampling and compositing, LoRA export to the stock
diffusers pipeline); every plug-in that loads a checkpoint gets the `loader` fixture's tests. A
new family's files join the suite by being there."""

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from diffusers import DiffusionPipeline

import realfill.modules
from realfill.modules import InpaintingBaseModel

TWIN_PREFIX = "tiny"
"""Modules of `realfill.modules` whose name starts with this hold the tiny twins."""


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


def plugin_of(twin: type[InpaintingBaseModel]) -> Plugin:
    """The plug-in test entry of a tiny twin: its family's stock pipeline, loaded with the
    family's pipeline settings (no safety checker, no watermark)."""
    name = twin.__name__.removeprefix("Tiny").removesuffix("Inpainting")
    return Plugin(name, twin, twin.pipeline_class, dict(twin.pipeline_settings))


def plugin_classes(twins: bool) -> list[type[InpaintingBaseModel]]:
    """Every concrete plug-in defined in `realfill.modules`: the tiny twins (in its `tiny*`
    modules), or those that load a checkpoint (`pretrained_model_name_or_path`)."""
    found = []
    for module_info in pkgutil.iter_modules(realfill.modules.__path__):
        if module_info.name.startswith(TWIN_PREFIX) != twins:
            continue
        module = importlib.import_module(f"realfill.modules.{module_info.name}")
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, InpaintingBaseModel)
            and not inspect.isabstract(value)
            and value.__module__ == module.__name__
            and (twins or "pretrained_model_name_or_path" in inspect.signature(value).parameters)
        ]
    return found


PLUGINS = [plugin_of(twin) for twin in plugin_classes(twins=True)]

LOADERS = plugin_classes(twins=False)
"""The plug-ins that load a pretrained checkpoint from the hub or a folder."""


@pytest.fixture(params=PLUGINS, ids=[plugin.name for plugin in PLUGINS])
def plugin(request: pytest.FixtureRequest) -> Plugin:
    return request.param


@pytest.fixture
def base(plugin: Plugin) -> InpaintingBaseModel:
    return plugin.build()


@pytest.fixture(params=LOADERS, ids=[loader.__name__ for loader in LOADERS])
def loader(request: pytest.FixtureRequest) -> type[InpaintingBaseModel]:
    return request.param
