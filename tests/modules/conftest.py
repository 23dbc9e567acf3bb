"""The base-model plug-ins under test: the tiny twin of every family, found in the
`realfill/modules/tiny*.py` modules, gets every test that takes the `plugin` or `base` fixture
(training, the masked-loss invariance, sampling and compositing, LoRA export to the stock
diffusers pipeline); every plug-in that loads a checkpoint gets the `loader` fixture's tests,
and the plug-in contract (`contract_plugin`: a fit step, sampling, LoRA export and reload) runs
on it too, loading its family's twin saved in the hub's layout. A new family's files join the
suite by being there."""

import functools
import importlib
import inspect
import pkgutil
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


TWINS = plugin_classes(twins=True)

PLUGINS = [plugin_of(twin) for twin in TWINS]

LOADERS = plugin_classes(twins=False)
"""The plug-ins that load a pretrained checkpoint from the hub or a folder."""

SEPARATE_VAE = "vae_name_or_path"
"""A loader's argument for a VAE loaded from its own folder instead of the checkpoint's."""

LOAD_DTYPE = "load_dtype"
"""A loader's argument for the dtype of the loaded weights."""


def twin_of(loader: type[InpaintingBaseModel]) -> type[InpaintingBaseModel]:
    """The tiny twin of a loader's family: the twin with the same family base class."""
    (twin,) = [twin for twin in TWINS if twin.__bases__ == loader.__bases__]
    return twin


@dataclass(frozen=True)
class SavedTwin:
    """A tiny twin saved in the hub's layout: a pipeline folder (model_index.json, one folder
    per component) and its VAE again in a folder of its own."""

    checkpoint: Path
    vae: Path

    def copy(self, destination: Path) -> "SavedTwin":
        """A copy to damage (the session's folders are shared)."""
        shutil.copytree(self.checkpoint, destination / self.checkpoint.name)
        shutil.copytree(self.vae, destination / self.vae.name)
        return SavedTwin(destination / self.checkpoint.name, destination / self.vae.name)

    def arguments(self, loader: type[InpaintingBaseModel]) -> dict:
        """`loader`'s keyword arguments to load this twin: the folder, the separate VAE where
        the loader takes one, fp32 weights (the twin's) where it has a load dtype."""
        parameters = inspect.signature(loader).parameters
        arguments = {"pretrained_model_name_or_path": str(self.checkpoint)}
        if SEPARATE_VAE in parameters:
            arguments[SEPARATE_VAE] = str(self.vae)
        if LOAD_DTYPE in parameters:
            arguments[LOAD_DTYPE] = "float32"
        return arguments


@pytest.fixture(scope="session")
def saved_twin(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[type[InpaintingBaseModel]], SavedTwin]:
    """`saved_twin(twin)`: the twin saved with diffusers' `save_pretrained`, once a session."""
    root = tmp_path_factory.mktemp("checkpoints")

    @functools.cache
    def save(twin: type[InpaintingBaseModel]) -> SavedTwin:
        model = twin()
        saved = SavedTwin(root / twin.__name__, root / f"{twin.__name__}-vae")
        model.pipeline().save_pretrained(saved.checkpoint)
        model.vae.save_pretrained(saved.vae)
        return saved

    return save


def loaded_plugin(loader: type[InpaintingBaseModel], saved: SavedTwin) -> Plugin:
    """The contract entry of a real plug-in loading its family's saved twin."""
    twin = plugin_of(twin_of(loader))
    build = functools.partial(loader, **saved.arguments(loader))
    return Plugin(loader.__name__, build, twin.stock_pipeline, twin.stock_load_arguments)


@pytest.fixture(params=PLUGINS, ids=[plugin.name for plugin in PLUGINS])
def plugin(request: pytest.FixtureRequest) -> Plugin:
    return request.param


@pytest.fixture
def base(plugin: Plugin) -> InpaintingBaseModel:
    return plugin.build()


@pytest.fixture(params=LOADERS, ids=[loader.__name__ for loader in LOADERS])
def loader(request: pytest.FixtureRequest) -> type[InpaintingBaseModel]:
    return request.param


@pytest.fixture
def saved_checkpoint(
    loader: type[InpaintingBaseModel],
    saved_twin: Callable[[type[InpaintingBaseModel]], SavedTwin],
    tmp_path: Path,
) -> SavedTwin:
    """A copy of the loader's family twin, saved in the hub's layout, for a test to damage."""
    return saved_twin(twin_of(loader)).copy(tmp_path)


CONTRACT = [(twin, None) for twin in TWINS] + [(twin_of(loader), loader) for loader in LOADERS]
"""The plug-in contract's entries: every twin built in code, then every loader loading it."""


@pytest.fixture(
    params=CONTRACT,
    ids=[plugin_of(twin).name if loader is None else loader.__name__ for twin, loader in CONTRACT],
)
def contract_plugin(
    request: pytest.FixtureRequest,
    saved_twin: Callable[[type[InpaintingBaseModel]], SavedTwin],
) -> Plugin:
    """A twin built in code, or a real plug-in loading its family's twin from a folder."""
    twin, loader = request.param
    return plugin_of(twin) if loader is None else loaded_plugin(loader, saved_twin(twin))


@pytest.fixture
def contract_base(contract_plugin: Plugin) -> InpaintingBaseModel:
    return contract_plugin.build()
