"""LoRA settings: the adapters' initialisation is the public implementation's unless asked."""

import math

import pytest
import torch
from peft.tuners.lora import LoraLayer

from realfill.errors import ConfigError
from realfill.modules import LoraSettings, TinyStableDiffusionInpainting


def adapted_layers(init: str | None) -> list[LoraLayer]:
    base = TinyStableDiffusionInpainting(seed=0)
    settings = LoraSettings(rank=4) if init is None else LoraSettings(rank=4, init=init)
    base.add_lora(settings)
    layers = [m for m in base.modules() if isinstance(m, LoraLayer)]
    assert layers
    return layers


def test_default_init_is_peft_kaiming_uniform_with_zero_b():
    """peft's default, as the public RealFill implementation: A ~ U(-1/sqrt(in), 1/sqrt(in))
    (Kaiming-uniform with a = sqrt(5)), B = 0, so the fit starts at the base model."""
    for layer in adapted_layers(None):
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        bound = 1 / math.sqrt(a.shape[1])
        assert a.abs().max() <= bound + 1e-6
        assert a.abs().max() > 0.5 * bound  # uniform over the bound, not a narrow Gaussian
        assert not b.any()


def test_gaussian_init_draws_a_with_std_one_over_rank():
    """diffusers' DreamBooth-LoRA scripts' choice, on request: A ~ N(0, 1/r), B = 0."""
    values = [layer.lora_A["default"].weight.flatten() for layer in adapted_layers("gaussian")]

    a = torch.cat(values)
    assert abs(a.std().item() - 1 / 4) < 0.02
    assert all(not layer.lora_B["default"].weight.any() for layer in adapted_layers("gaussian"))


def test_unknown_init_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="model.lora.init must be one of"):
        LoraSettings(init="pissa")
