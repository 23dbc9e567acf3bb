"""What a fit learned about the missing region, without sampling: how well the model predicts
the noise added to the *true* content of a target's hole, given the target as its inpainting
conditioning. A fit that carried the references' content into the model predicts it better than
the base model; one that learned nothing (or learned the hole's blank) does not. Deterministic
for a seed, and a few forward passes instead of many sampled candidates."""

from pathlib import Path

import torch
import yaml
from PIL import Image

from realfill import layout
from realfill.data import pad_to_canvas, resized_conditioning
from realfill.data.datamodule import PIXEL_SCALE, pil_to_tensor
from realfill.modules.base_model import InpaintingBaseModel
from realfill.modules.loss import masked_mse
from realfill.modules.sampling import sampling_canvas


def image_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as a [1, 3, H, W] float tensor in [-1, 1], scaled as training scales it."""
    return (pil_to_tensor(image.convert("RGB")).float() / PIXEL_SCALE - 1.0).unsqueeze(0)


@torch.no_grad()
def hole_denoising_error(
    base_model: InpaintingBaseModel,
    target: Image.Image,
    mask: Image.Image,
    ground_truth: Image.Image,
    prompt: str,
    resolution: int,
    draws: int = 32,
    seed: int = 0,
    noise_levels: tuple[float, float] = (0.0, 1.0),
) -> float:
    """Mean squared error of the model's prediction (noise or velocity) over the latent cells
    of the hole, for `draws` noisings of the ground truth, at the sampling
    size (`sampling_canvas`) and with the target and hole prepared as sampling prepares them.
    The same `seed` gives every model the same noise; the timesteps are spread evenly over
    the fraction `noise_levels` of the training schedule (high levels: what the model knows
    of the content, not of the noise). For the DDPM-trained families (SD, SDXL)."""
    size, canvas = sampling_canvas(*target.size, resolution, base_model.sampling_multiple)
    conditioning, hole = resized_conditioning(target, mask, size, canvas)
    hole_mask = (pil_to_tensor(hole) > 0).float().unsqueeze(0)
    truth = image_tensor(ground_truth.convert("RGB").resize(size, Image.BICUBIC))
    truth = pad_to_canvas(truth[0], canvas)[None]
    masked = image_tensor(conditioning) * (1.0 - hole_mask)
    device = next(base_model.parameters()).device
    scheduler = base_model.scheduler
    steps = scheduler.config.num_train_timesteps
    low, high = noise_levels
    timesteps = ((low + (high - low) * (torch.arange(draws) + 0.5) / draws) * steps).long()
    timesteps = timesteps.clamp(0, steps - 1).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        latents, masked_latents = base_model.encode_images(
            torch.cat([truth, masked]).to(device)
        ).chunk(2)
        latents = latents.expand(draws, -1, -1, -1).float()
        noise = torch.randn_like(latents)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    latent_hole = base_model.latent_mask(hole_mask.to(device))
    conditioning_states = base_model.encode_prompt([prompt])
    prediction = base_model.denoise(
        noisy,
        timesteps,
        latent_hole.expand(draws, -1, -1, -1),
        masked_latents.expand(draws, -1, -1, -1),
        base_model.select_conditioning(conditioning_states, torch.zeros(draws, dtype=torch.long)),
    )
    if scheduler.config.prediction_type == "v_prediction":
        expected = scheduler.get_velocity(latents, noise, timesteps)
    else:
        expected = noise
    return masked_mse(prediction.float(), expected, latent_hole[:, :1]).item()


def run_hole_error(
    scene_dir: Path, run_dir: Path | None, base_model: str, prompt: str, resolution: int
) -> float:
    """`hole_denoising_error` on a scene with ground truth, of the SD-family `base_model` (hub
    id or folder) as it is, or with the LoRA a fit wrote in `run_dir` (its config.yaml gives
    the adapters' settings)."""
    from realfill.modules import LoraSettings, StableDiffusionInpainting

    model = StableDiffusionInpainting(base_model)
    if run_dir is not None:
        config = yaml.safe_load(layout.run_config(Path(run_dir)).read_text())
        model.add_lora(LoraSettings(**config["model"]["lora"]))
        model.load_lora(Path(run_dir) / layout.LORA_DIRNAME)
    target = Path(scene_dir) / "target"
    images = [Image.open(target / name) for name in ("target.png", "mask.png", "gt.png")]
    return hole_denoising_error(model.eval(), *images, prompt=prompt, resolution=resolution)
