"""Loading a family's components from a diffusers checkpoint, and choosing sampling schedulers:
what every base-model family shares, with the one-line errors users see."""

import dataclasses
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import diffusers
import huggingface_hub.constants
import torch
from diffusers import SchedulerMixin
from safetensors import SafetensorError

from realfill.errors import ConfigError, ModelLoadError

Components = typing.TypeVar("Components")
"""A family's components dataclass (one field per checkpoint subfolder)."""

PIPELINE_INDEX = "model_index.json"
"""The file at the root of every diffusers pipeline folder (the hub's layout)."""


def scheduler_class(name: str) -> type[SchedulerMixin]:
    """The diffusers scheduler class called `name`; a one-line error for any other name, so
    that a sampling setting can be checked before training rather than after it."""
    found = getattr(diffusers, name, None)
    if not (isinstance(found, type) and issubclass(found, SchedulerMixin)):
        raise ConfigError(f"{name!r} is not a diffusers scheduler class (e.g. DDPMScheduler)")
    return found


def scheduler_from_name(name: str, trained: SchedulerMixin) -> SchedulerMixin:
    """A diffusers scheduler, chosen by class name, over a trained model's schedule: one of
    the trained scheduler's compatibles (diffusers' own list: a flow-matching model takes
    flow matching, a noise-prediction model the DDPM family), else a one-line error."""
    chosen = scheduler_class(name)
    compatible = {type(trained), *trained.compatibles}
    if chosen not in compatible:
        names = ", ".join(sorted(c.__name__ for c in compatible))
        raise ConfigError(
            f"the sampling scheduler {name} does not fit a model trained with "
            f"{type(trained).__name__}; take one of {names}"
        )
    return chosen.from_config(trained.config)


def first_line(error: Exception) -> str:
    """An exception's first message line (its type if it has no message)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_failure(error: Exception) -> str:
    """Why loading failed, in one line: the safetensors parser's reason where a weights file is
    damaged (diffusers wraps it in an error that names the file but not the damage)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, SafetensorError):
            return f"damaged safetensors file: {first_line(cause)}"
        cause = cause.__cause__ or cause.__context__
    return first_line(error)


def cannot_load(source: str, reason: str) -> ModelLoadError:
    """The one-line error for a base model that could not be loaded, and why."""
    offline_hint = (
        ""
        if huggingface_hub.constants.HF_HUB_OFFLINE
        else " (without network, HF_HUB_OFFLINE=1 fails at once instead of retrying)"
    )
    path = Path(source)
    if path.is_dir():
        where = "the local folder"
    elif path.exists():
        where = "the local file"
    else:
        where = f"the hub, or no local folder of that name{offline_hint}"
    return ModelLoadError(
        f"cannot load the base model {source!r} from {where} ({reason}). Point "
        "model.base_model.init_args.pretrained_model_name_or_path at a local diffusers folder "
        "(e.g. from `huggingface-cli download` on a machine with network), "
        "or try the offline example: --config configs/tiny.yaml"
    )


def check_local_layout(source: str, subfolders: list[str]) -> None:
    """A local `source` must be a pipeline folder in the hub's layout, with a subfolder per
    component: diffusers, given a missing subfolder, falls back to the folder itself and
    fails later on another file (or loads a VAE's weights into a UNet). Hub ids pass."""
    path = Path(source)
    if not path.exists():
        return
    if not path.is_dir():
        raise cannot_load(source, "a file, not a diffusers pipeline folder")
    if not (path / PIPELINE_INDEX).is_file():
        raise cannot_load(source, f"not a diffusers pipeline folder: no {PIPELINE_INDEX}")
    missing = [name for name in subfolders if not (path / name).is_dir()]
    if missing:
        expected = ", ".join(f"{name}/" for name in subfolders)
        raise cannot_load(source, f"no {missing[0]}/ folder; the checkpoint needs {expected}")


@contextmanager
def naming_the_checkpoint(source: str) -> Iterator[None]:
    """Name `source` in a family's refusal of the components loaded from it (e.g. a UNet
    without the inpainting inputs), which otherwise says what is wrong but not where."""
    try:
        yield
    except ModelLoadError as error:
        raise ModelLoadError(f"the base model {source!r} does not fit: {error}") from error


def component_class(annotation: object) -> type:
    """The class of a components field annotated `X` or `X | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
    return annotation


def load_part(
    part: type,
    source: str,
    subfolder: str,
    revision: str | None,
    variant: str | None,
    dtype: torch.dtype | None,
) -> object:
    """One component from its subfolder. Weights (torch modules) take the variant and dtype;
    tokenizers and schedulers only the revision."""
    if not issubclass(part, torch.nn.Module):
        return part.from_pretrained(source, subfolder=subfolder, revision=revision)
    weights = {"revision": revision, "variant": variant}
    if dtype is not None:
        weights["torch_dtype"] = dtype
    return part.from_pretrained(source, subfolder=subfolder, **weights)


def load_components(
    components: type[Components],
    source: str,
    revision: str | None = None,
    variant: str | None = None,
    dtype: torch.dtype | None = None,
    **given: object,
) -> Components:
    """A family's components dataclass loaded from a hub id or a local diffusers folder: each
    field from the subfolder of its name, as its annotated class (`given` ones as they are),
    with a one-line error for the first that fails."""
    hints = typing.get_type_hints(components)
    loaded = dict(given)
    wanted = [field.name for field in dataclasses.fields(components) if field.name not in loaded]
    check_local_layout(source, wanted)
    for name in wanted:
        part = component_class(hints[name])
        try:
            loaded[name] = load_part(part, source, name, revision, variant, dtype)
        except (OSError, ValueError, SafetensorError) as error:
            raise cannot_load(source, f"{name}/: {load_failure(error)}") from error
    return components(**loaded)
