"""Sampling after mixed-precision training runs in the compute dtype, as a stock bf16 pipeline."""

import torch
from PIL import Image

from realfill.modules import RealFillModule

RESOLUTION = 32


def test_bf16_sampling_runs_in_bf16_without_autocast_and_restores_the_fp32_adapters(plugin, base):
    module = RealFillModule(base)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    module.base_model.cast_frozen(torch.bfloat16)
    adapters = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    seen = []

    def record(denoiser, args, kwargs):
        sample = args[0] if args else next(iter(kwargs.values()))
        lora = next(p for n, p in denoiser.named_parameters() if "lora_A" in n)
        seen.append((sample.dtype, lora.dtype, torch.is_autocast_enabled("cpu")))

    module.base_model.denoiser.register_forward_pre_hook(record, with_kwargs=True)
    target = Image.new("RGB", (40, 32), (200, 30, 90))
    mask = Image.new("L", (40, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as Lightning's bf16-mixed wraps it
        (image,) = module.generate(
            target,
            mask,
            [0],
            resolution=RESOLUTION,
            num_inference_steps=2,
            progress=False,
            **plugin.sampling,
        )
    assert seen and set(seen) == {(torch.bfloat16, torch.bfloat16, False)}
    assert image.size[1] == RESOLUTION
    for name, param in module.named_parameters():
        if param.requires_grad:
            assert param.dtype == torch.float32, name
            assert torch.equal(param, adapters[name]), name
