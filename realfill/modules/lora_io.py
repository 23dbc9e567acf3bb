"""Saving and loading peft LoRA adapters in the diffusers format, for any base-model family.

A family lists its adapted components by their diffusers pipeline name (`unet`,
`text_encoder`, `text_encoder_2`, `transformer`) with the key conversions its pipeline's
`save_lora_weights` / `load_lora_weights` expect; the file is then the one stock diffusers
writes and reads.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.loaders.lora_base import LoraBaseMixin
from diffusers.utils import (
    convert_state_dict_to_diffusers,
    convert_state_dict_to_peft,
    convert_unet_state_dict_to_peft,
)
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file

from realfill.errors import ModelLoadError
from realfill.io import staged_directory, umask_mode

LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
"""The file name stock diffusers writes and looks for first."""

StateDict = dict[str, torch.Tensor]


def adapter_state(module: torch.nn.Module) -> StateDict:
    """The LoRA tensors of a peft-adapted module (no embedding layers: realfill adapts none,
    and peft's check for them warns about a missing config file in a diffusers folder)."""
    return get_peft_model_state_dict(module, save_embedding_layers=False)


def unchanged(state: StateDict) -> StateDict:
    """The identity key conversion (peft keys are what the pipeline stores, e.g. Flux)."""
    return state


@dataclass(frozen=True)
class LoraKeys:
    """How a component's peft adapter keys map to and from the keys of the saved file."""

    to_saved: Callable[[StateDict], StateDict] = unchanged
    """Converts peft adapter keys to the keys the pipeline's `save_lora_weights` expects."""
    to_peft: Callable[[StateDict], StateDict] = unchanged
    """Converts saved keys (prefix removed) back to peft adapter keys."""


PEFT_KEYS = LoraKeys()
"""Keys saved as peft names them (the Flux transformer)."""

TEXT_ENCODER_KEYS = LoraKeys(convert_state_dict_to_diffusers, convert_state_dict_to_peft)
"""The diffusers keys of a transformers text encoder's adapters (CLIP)."""

UNET_KEYS = LoraKeys(convert_state_dict_to_diffusers, convert_unet_state_dict_to_peft)
"""The diffusers keys of a UNet's adapters."""


@dataclass
class AdaptedComponent:
    """One module carrying a peft adapter, and how its keys map to and from the saved file."""

    module: torch.nn.Module
    """The adapted module (UNet, transformer or text encoder)."""
    keys: LoraKeys = PEFT_KEYS
    """Its key conversions."""


def inference_lora_metadata(module: torch.nn.Module) -> dict:
    """The adapter config to store beside the weights, with dropout off and sets (peft's
    `target_modules`) as sorted lists, so that the same adapters give the same file.

    Stock diffusers leaves freshly loaded LoRA layers in training mode, so a stored dropout
    would make every `load_lora_weights` user sample with random dropout.
    """
    config = module.peft_config["default"].to_dict()
    config = {k: sorted(v) if isinstance(v, set | frozenset) else v for k, v in config.items()}
    return {**config, "lora_dropout": 0.0}


def save_adapters(
    pipeline_class: type[LoraBaseMixin], directory: Path, components: dict[str, AdaptedComponent]
) -> None:
    """Write every component's adapter with `pipeline_class.save_lora_weights`, atomically.
    Tensors are made contiguous first: safetensors refuses channels-last convolution weights."""
    layers = {
        f"{name}_lora_layers": {
            key: value.contiguous()
            for key, value in part.keys.to_saved(adapter_state(part.module)).items()
        }
        for name, part in components.items()
    }
    metadata = {
        f"{name}_lora_adapter_metadata": inference_lora_metadata(part.module)
        for name, part in components.items()
    }
    with staged_directory(Path(directory), {LORA_WEIGHTS_NAME}) as staging:
        pipeline_class.save_lora_weights(staging, **layers, **metadata)
        os.chmod(staging / LORA_WEIGHTS_NAME, umask_mode(directory=False))  # safetensors: 0600


def read_weights(path: Path) -> StateDict:
    """The tensors of a safetensors file, or `ModelLoadError` naming it when it is not one
    (empty, truncated, another format)."""
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise ModelLoadError(f"{path}: not a valid LoRA file ({error})") from None


def lora_rank(key: str, shape: torch.Size) -> int | None:
    """The rank a LoRA tensor was made for (`lora_A` is rank x in, `lora_B` out x rank), or
    None for another kind of tensor."""
    if ".lora_A." in key and len(shape) > 0:
        return shape[0]
    if ".lora_B." in key and len(shape) > 1:
        return shape[1]
    return None


def check_shapes(path: Path, module: torch.nn.Module, weights: StateDict) -> None:
    """Refuse, naming the file, adapters whose tensors are not the model's shapes (another
    rank): torch would copy the fitting ones, then fail with a traceback on the others."""
    own = adapter_state(module)
    for key, value in weights.items():
        if key not in own or own[key].shape == value.shape:
            continue
        saved_rank, own_rank = lora_rank(key, value.shape), lora_rank(key, own[key].shape)
        if saved_rank is not None and own_rank is not None and saved_rank != own_rank:
            raise ModelLoadError(
                f"{path}: LoRA rank {saved_rank} does not fit model.lora.rank {own_rank}"
            )
        raise ModelLoadError(
            f"{path}: LoRA does not fit the model's adapters ({key} is "
            f"{list(value.shape)} there, {list(own[key].shape)} here)"
        )


def load_adapters(
    directory: Path,
    components: dict[str, AdaptedComponent],
    idle: Callable[[str], bool] | None = None,
) -> None:
    """Load a file written by `save_adapters` into the components' (already added) adapters.
    Weights whose key `idle` accepts are left out: adapters that never trained (an unused
    layer's), which earlier versions added and saved."""
    path = Path(directory) / LORA_WEIGHTS_NAME
    if not path.is_file():
        raise ModelLoadError(f"{directory}: no LoRA weights file {LORA_WEIGHTS_NAME} in it")
    state = {key: value for key, value in read_weights(path).items() if not (idle and idle(key))}
    known = tuple(f"{name}." for name in components)
    strays = sorted({key.split(".")[0] for key in state if not key.startswith(known)})
    if strays:
        raise ModelLoadError(f"{path}: LoRA weights for {strays}, which this model does not adapt")
    loads: list[tuple[torch.nn.Module, StateDict]] = []
    for name, part in components.items():
        prefix = name + "."
        saved = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not saved:
            continue
        if not hasattr(part.module, "peft_config"):
            raise ModelLoadError(f"{path}: has {name} LoRA weights but {name} has no adapter")
        weights = part.keys.to_peft(saved)
        check_shapes(path, part.module, weights)
        loads.append((part.module, weights))
    for module, weights in loads:  # every component checked before any loads
        result = set_peft_model_state_dict(module, weights)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if result.unexpected_keys or missing:
            raise ModelLoadError(
                f"{path}: LoRA does not fit the model's adapters (check model.lora.rank and "
                f"target modules; {len(result.unexpected_keys)} unexpected, "
                f"{len(missing)} missing keys)"
            )
