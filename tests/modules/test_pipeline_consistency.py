"""Training sees the denoiser as the stock pipeline drives it: same text conditioning, same
mask layout, same packing and timestep scale, same output for the same inputs."""

import numpy as np
import torch
from PIL import Image

from realfill.modules import TinyFluxFillInpainting, TinyStableDiffusionXLInpainting
from realfill.modules.flux_fill import TIMESTEP_SCALE, pack, unpack

SIZE = 32
PROMPT = "a photo of sks"


def scene_pair() -> tuple[Image.Image, Image.Image, torch.Tensor]:
    """A target, its mask image and the mask as a [1, 1, H, W] tensor (1 = generate)."""
    target = Image.effect_mandelbrot((SIZE, SIZE), (-2, -1.5, 1, 1.5), 32).convert("RGB")
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (8, 4, 24, 20))
    tensor = torch.from_numpy(np.asarray(mask) > 127).float()[None, None]
    return target, mask, tensor


def first_call(module: torch.nn.Module, run) -> tuple[tuple, dict, object]:
    """The positional args, keyword args and output of `module`'s first forward inside `run`."""
    calls = []
    handle = module.register_forward_hook(
        lambda _, args, kwargs, out: calls.append((args, kwargs, out)), with_kwargs=True
    )
    try:
        run()
    finally:
        handle.remove()
    return calls[0]


def test_flux_fill_denoise_is_what_the_stock_pipeline_computes():
    base = TinyFluxFillInpainting().eval()
    target, mask, mask_tensor = scene_pair()
    pipe = base.pipeline("FlowMatchEulerDiscreteScheduler")
    pipe.set_progress_bar_config(disable=True)
    _, kwargs, output = first_call(
        base.transformer,
        lambda: pipe(
            prompt=[PROMPT], image=[target], mask_image=[mask], height=SIZE, width=SIZE,
            num_inference_steps=2, guidance_scale=base.guidance,
            generator=torch.Generator().manual_seed(0), **base.pipeline_arguments(),
        ),
    )  # fmt: skip
    with torch.no_grad():
        conditioning = base.encode_prompt([PROMPT])
    assert torch.equal(conditioning["encoder_hidden_states"], kwargs["encoder_hidden_states"])
    assert torch.equal(conditioning["pooled_projections"], kwargs["pooled_projections"])

    latent_side = SIZE // base.vae_scale_factor
    tokens = kwargs["hidden_states"]
    width = base.vae.config.latent_channels * 4
    mask_latent = base.latent_mask(mask_tensor)
    assert torch.equal(pack(mask_latent), tokens[..., 2 * width :])
    noisy = unpack(tokens[..., :width], latent_side, latent_side)
    masked = unpack(tokens[..., width : 2 * width], latent_side, latent_side)
    assert torch.equal(pack(noisy), tokens[..., :width])
    with torch.no_grad():
        prediction = base.denoise(
            noisy, kwargs["timestep"] * TIMESTEP_SCALE, mask_latent, masked, conditioning
        )
    assert torch.allclose(pack(prediction), output[0], atol=1e-5)


def test_sdxl_denoise_is_what_the_stock_pipeline_computes():
    base = TinyStableDiffusionXLInpainting().eval()
    target, mask, mask_tensor = scene_pair()
    pipe = base.pipeline()
    pipe.set_progress_bar_config(disable=True)
    args, kwargs, output = first_call(
        base.unet,
        lambda: pipe(
            prompt=[PROMPT], image=[target], mask_image=[mask], height=SIZE, width=SIZE,
            num_inference_steps=2, guidance_scale=1.0,
            generator=torch.Generator().manual_seed(0), **base.pipeline_arguments(),
        ),
    )  # fmt: skip
    batch = {
        "pixels": torch.zeros(1, 3, SIZE, SIZE),
        "original_size": torch.tensor([[SIZE, SIZE]]),  # the pipeline's defaults
        "crop_top_left": torch.tensor([[0, 0]]),
    }
    with torch.no_grad():
        conditioning = base.sample_conditioning(base.encode_prompt([PROMPT]), batch)
    added = kwargs["added_cond_kwargs"]
    assert torch.equal(conditioning["encoder_hidden_states"], kwargs["encoder_hidden_states"])
    assert torch.equal(conditioning["text_embeds"], added["text_embeds"])
    assert torch.equal(conditioning["time_ids"], added["time_ids"])

    model_input, timestep = args
    mask_latent = base.latent_mask(mask_tensor)
    assert torch.equal(mask_latent, model_input[:, 4:5])
    with torch.no_grad():
        prediction = base.denoise(
            model_input[:, :4], timestep, mask_latent, model_input[:, 5:], conditioning
        )
    assert torch.allclose(prediction, output[0], atol=1e-5)
