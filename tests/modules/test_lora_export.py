import json
import os
import re
import stat
from collections.abc import Iterable

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from realfill.errors import ModelLoadError
from realfill.modules import (
    InpaintingBaseModel,
    LoraSettings,
    RealFillModule,
    TinyStableDiffusionInpainting,
    sampling,
)
from realfill.modules.lora_io import LORA_WEIGHTS_NAME
from realfill.modules.sampling import sampling_batch_size

SAMPLING = {"resolution": 64, "num_inference_steps": 4, "batch_size": 2, "progress": False}


def stock_sample(pipe, base: InpaintingBaseModel, target, mask, seeds, prompt) -> list[np.ndarray]:
    """One stock-pipeline call per seed, as `generate` samples on the CPU."""
    return [
        np.asarray(
            pipe(
                prompt=[prompt],
                image=[target],
                mask_image=[mask],
                height=64,
                width=64,
                num_inference_steps=SAMPLING["num_inference_steps"],
                guidance_scale=base.sampling_guidance_scale,
                generator=[torch.Generator().manual_seed(seed)],
                **base.pipeline_arguments(),
            ).images[0]
        )
        for seed in seeds
    ]


DENOISERS = ("unet", "transformer")


def realign(components: Iterable[object]) -> None:
    """Copy every weight of the torch modules among `components` into freshly allocated memory.

    Weights loaded from safetensors can sit at addresses the CPU matrix kernels do not align
    to, which changes float rounding (measured: 7e-7 in one UNet output, one pixel off by one
    after sampling). The values are unchanged; only their placement matches a model built in
    code. Both sides of a comparison get it: a plug-in may load its base model from a folder.
    """
    for component in components:
        if isinstance(component, torch.nn.Module):
            for param in component.parameters():
                param.data = param.data.clone()


def test_saved_lora_loads_into_stock_diffusers_and_reproduces_our_samples(
    contract_plugin, tmp_path
):
    torch.manual_seed(0)
    module = RealFillModule(contract_plugin.build())
    realign([module])
    with torch.no_grad():  # a trained-looking adapter
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    module.save_lora(tmp_path / "lora")
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()

    target = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 64).convert("RGB")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    seeds = [3, 7]
    ours = [np.asarray(im) for im in module.generate(target, mask, seeds, **SAMPLING)]
    ours_unmerged = [
        np.asarray(im)
        for im in module.generate(target, mask, seeds, merge_adapters=False, **SAMPLING)
    ]

    contract_plugin.build().pipeline().save_pretrained(tmp_path / "base")
    stock = contract_plugin.stock_pipeline.from_pretrained(
        tmp_path / "base", **contract_plugin.stock_load_arguments
    )
    stock.set_progress_bar_config(disable=True)
    base = module.base_model
    base_only = stock_sample(stock, base, target, mask, seeds, module.prompt)
    stock.load_lora_weights(tmp_path / "lora")
    realign(stock.components.values())
    with_lora = stock_sample(stock, base, target, mask, seeds, module.prompt)
    # we sample with the denoiser's LoRA folded in, as stock `fuse_lora` does
    stock.fuse_lora(components=[c for c in stock._lora_loadable_modules if c in DENOISERS])
    fused = stock_sample(stock, base, target, mask, seeds, module.prompt)

    for mine, theirs, base_image in zip(ours, fused, base_only, strict=True):
        assert np.array_equal(mine, theirs)
        assert not np.array_equal(mine, base_image)
    for mine, theirs in zip(ours_unmerged, with_lora, strict=True):
        assert np.array_equal(mine, theirs)


def test_saved_lora_loads_back_into_a_fresh_model(contract_plugin, tmp_path):
    torch.manual_seed(0)
    module = RealFillModule(contract_plugin.build())
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    module.save_lora(tmp_path / "lora")
    fresh = RealFillModule(contract_plugin.build())
    fresh.base_model.load_lora(tmp_path / "lora")
    trained = dict(module.named_parameters())
    for name, param in fresh.named_parameters():
        if param.requires_grad:
            assert torch.equal(param, trained[name]), name


def test_the_lora_file_is_reproducible_and_gets_the_umasks_mode(tmp_path):
    """Two saves of the same adapters give the same bytes (peft keeps `target_modules` as a
    set, in an order that changes between processes); the file is 0644 under umask 022
    (safetensors alone creates it 0600)."""
    module = RealFillModule(TinyStableDiffusionInpainting(seed=0))
    previous = os.umask(0o022)
    try:
        module.save_lora(tmp_path / "lora")
    finally:
        os.umask(previous)
    path = tmp_path / "lora" / LORA_WEIGHTS_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    with safe_open(str(path), "pt") as weights:
        metadata = json.loads(weights.metadata()["lora_adapter_metadata"])
    modules = {key: value for key, value in metadata.items() if key.endswith(".target_modules")}
    assert modules and all(value == sorted(value) for value in modules.values())


def test_the_cpu_samples_one_candidate_at_a_time_for_bit_exact_seeds():
    assert sampling_batch_size(8, torch.device("cpu")) == 1
    assert sampling_batch_size(8, torch.device("cuda")) == 8


def test_a_seed_reproduces_its_candidate_whatever_the_batch(plugin, base, monkeypatch):
    """Each candidate draws from its own seed's generator: batched (as on a GPU; forced here
    on the CPU) it matches its one-at-a-time self up to the batched convolutions' rounding."""
    monkeypatch.setattr(sampling, "sampling_batch_size", lambda requested, device: requested)
    settings = {**SAMPLING, "batch_size": 3}
    module = RealFillModule(base)
    target = Image.new("RGB", (72, 64), (90, 140, 30))
    mask = Image.new("L", (72, 64), 0)
    mask.paste(255, (0, 0, 20, 64))
    candidates = module.generate(target, mask, [5, 6, 7], **settings)
    assert candidates[1].size == (72, 64)  # shorter side at the resolution, aspect kept
    batched = [np.asarray(candidate, np.int16) for candidate in candidates]
    single = np.asarray(module.generate(target, mask, [6], **settings)[0], np.int16)
    assert np.abs(batched[1] - single).max() <= 2
    assert np.abs(batched[0] - batched[1]).max() > 20  # other seeds, other candidates


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "header too small"),
        (b"\xff" * 100, "header too large"),
        ("truncated", "incomplete metadata"),
    ],
    ids=["empty", "garbage", "truncated"],
)
def test_a_damaged_lora_file_is_refused_naming_it(tmp_path, content, reason):
    module = RealFillModule(TinyStableDiffusionInpainting(seed=0))
    module.save_lora(tmp_path / "lora")
    path = tmp_path / "lora" / LORA_WEIGHTS_NAME
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] if content == "truncated" else content)
    with pytest.raises(ModelLoadError, match=f"not a valid LoRA file .*{reason}") as error:
        module.base_model.load_lora(tmp_path / "lora")
    assert str(error.value).startswith(f"{path}: ")


def test_a_lora_of_another_rank_is_refused_before_any_weight_loads(plugin, tmp_path):
    RealFillModule(plugin.build(), lora=LoraSettings(rank=4)).save_lora(tmp_path / "lora")
    module = RealFillModule(plugin.build())
    before = {name: p.clone() for name, p in module.named_parameters() if p.requires_grad}
    expected = (
        f"{tmp_path / 'lora' / LORA_WEIGHTS_NAME}: LoRA rank 4 does not fit model.lora.rank 8"
    )
    with pytest.raises(ModelLoadError, match=re.escape(expected)):
        module.base_model.load_lora(tmp_path / "lora")
    for name, param in module.named_parameters():
        if param.requires_grad:
            assert torch.equal(param, before[name]), name
