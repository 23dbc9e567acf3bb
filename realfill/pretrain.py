"""`python -m realfill.pretrain --out models/small-inpainting`: train the small base model.

Trains `realfill.modules.small`'s inpainting model from scratch on a CPU, in two stages: the
autoencoder (reconstruction), then the UNet (the inpainting objective with RealFill's random
training masks, first at half resolution, then at full), on photographs bundled with
scikit-image and procedural shapes (`realfill.data.pretraining`), never on the evaluation
scenes. It writes a diffusers folder that `realfill.modules.StableDiffusionInpainting` loads
like any checkpoint (`configs/small.yaml`). The defaults reproduce the shipped
`models/small-inpainting/` in about 30 minutes on 2 CPU cores.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, StableDiffusionInpaintPipeline
from jsonargparse import ArgumentParser, DefaultHelpFormatter, set_parsing_settings
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from realfill.cli import exit_on_user_error
from realfill.data.masks import TrainingMaskConfig, random_training_mask
from realfill.data.pretraining import bundled_photos, pretraining_batch
from realfill.errors import ConfigError
from realfill.io import check_replaceable, check_writable_folder, staged_directory
from realfill.modules.small import SmallModelConfig, build_small_components
from realfill.modules.stable_diffusion import StableDiffusionFamily

PRETRAINING_RECORD = "pretraining.json"
"""The settings and data a pretrained model folder was trained with."""
MODEL_FOLDER_ENTRIES = (
    "model_index.json",
    PRETRAINING_RECORD,
    "*/config.json",
    "*/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
    "tokenizer/*.json",
    "tokenizer/*.txt",
    "scheduler/scheduler_config.json",
)
"""What a pretrained model folder held before realfill wrote manifests: all an earlier run
may have written there (with its `PRETRAINING_RECORD`, see `legacy_model_folder`)."""


def legacy_model_folder(out: Path) -> bool:
    """Whether a model folder without a manifest is one `realfill.pretrain` wrote: it holds
    the pretraining record (a diffusers folder of the user's own does not)."""
    return (Path(out) / PRETRAINING_RECORD).is_file()


@dataclass
class PretrainSettings:
    """How long and how the small model trains."""

    seed: int = 0
    """Seed of the initial weights, the images, masks and noise."""
    batch_size: int = 16
    """Images per step, both stages."""
    resolution: int = 128
    """Image side of the UNet's full-resolution stage (latents are a quarter of it)."""
    autoencoder_steps: int = 3000
    """Autoencoder steps."""
    autoencoder_crop: int = 32
    """Side of the autoencoder's training crops: it is convolutional, so small crops train it
    for any size at a sixteenth of the cost of 128 px ones."""
    autoencoder_zoom_out: float = 16.0
    """Largest photo region a crop covers, in crop sides: 32 px crops of up to 512 px regions
    show the detail per pixel of the UNet's 128 px views of up to 512 px."""
    autoencoder_learning_rate: float = 2e-3
    """Peak AdamW learning rate of the autoencoder (linear warm-up, then cosine to a tenth)."""
    initial_log_variance: float = -8.0
    """Initial log-variance of the autoencoder's posterior (the bias of its output): at 0
    the sampled latents start as noise as loud as the signal, which the reconstruction
    loss is slow to silence."""
    kl_weight: float = 1e-6
    """Weight of the autoencoder's KL term (SD's): a near-deterministic latent."""
    low_resolution_steps: int = 2000
    """UNet steps at half the resolution: a quarter of the cost each, the same weights."""
    full_resolution_steps: int = 1700
    """UNet steps at the full resolution."""
    unet_learning_rate: float = 1e-3
    """Peak AdamW learning rate of the UNet (linear warm-up, then cosine to a tenth)."""
    warmup_steps: int = 100
    """Linear warm-up steps of both stages."""
    ema_decay: float = 0.995
    """Decay of the UNet weights' moving average, which is what is saved."""
    prompt_dropout: float = 0.1
    """Probability of training a sample with the empty prompt (as RealFill does)."""
    unet_precision: Literal["32-true", "bf16-mixed"] = "bf16-mixed"
    """The UNet stage's arithmetic: "bf16-mixed" runs its matmuls and convolutions in bf16
    under autocast, weights, optimizer and moving average staying fp32 (1.4x faster steps on
    a CPU with AVX-512 bf16 instructions; without them bf16 is emulated, use "32-true", which
    trains a slightly different model)."""
    channels_last: bool = True
    """Store the UNet's and autoencoder's convolution weights channels-last (NHWC) during the
    UNet stage, which the CPU's bf16 convolutions need to be fast."""

    def __post_init__(self) -> None:
        counts = ("autoencoder_steps", "low_resolution_steps", "full_resolution_steps")
        for name in (*counts, "warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch_size must be >= 1, got {self.batch_size}")
        if self.resolution < 32 or self.resolution % 32:
            raise ConfigError(f"--resolution must be a multiple of 32, got {self.resolution}")
        for name in ("autoencoder_learning_rate", "unet_learning_rate"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.prompt_dropout <= 1.0 or not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(
                "--prompt_dropout must be in [0, 1] and --ema_decay in (0, 1), got "
                f"{self.prompt_dropout} and {self.ema_decay}"
            )


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.1) -> float:
    """The learning-rate factor: linear warm-up, then cosine decay to `floor` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def autoencoder_loss(
    vae: AutoencoderKL, pixels: torch.Tensor, kl_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 + L2 reconstruction of a posterior sample, plus the weighted KL; and the L2 alone."""
    posterior = vae.encode(pixels).latent_dist
    reconstruction = vae.decode(posterior.sample()).sample
    mse = F.mse_loss(reconstruction, pixels)
    loss = F.l1_loss(reconstruction, pixels) + mse + kl_weight * posterior.kl().mean()
    return loss, mse.detach()


def train_autoencoder(
    vae: AutoencoderKL, photos: dict, settings: PretrainSettings, generator: torch.Generator
) -> float:
    """Train the autoencoder; return its reconstruction PSNR (dB) on the last steps' images."""
    vae.train().requires_grad_(True)
    with torch.no_grad():
        latent_channels = vae.config.latent_channels
        vae.quant_conv.bias[latent_channels:] = settings.initial_log_variance
    optimizer = torch.optim.AdamW(vae.parameters(), lr=settings.autoencoder_learning_rate)
    steps = settings.autoencoder_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, settings.warmup_steps, steps)
    )
    recent: list[float] = []
    bar = tqdm(range(steps), desc="autoencoder", unit="step")
    for step in bar:
        pixels, _ = pretraining_batch(
            photos,
            settings.batch_size,
            settings.autoencoder_crop,
            generator,
            max_zoom_out=settings.autoencoder_zoom_out,
        )
        loss, mse = autoencoder_loss(vae, pixels, settings.kl_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        recent = (recent + [mse.item()])[-20:]
        if step % 10 == 0:
            bar.set_postfix(psnr=f"{psnr_of_mse(sum(recent) / len(recent)):.1f} dB")
    vae.eval().requires_grad_(False)
    return psnr_of_mse(sum(recent) / len(recent))


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error between images in [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / max(mse, 1e-12))


@torch.no_grad()
def measure_autoencoder(
    vae: AutoencoderKL, photos: dict, settings: PretrainSettings, generator: torch.Generator
) -> tuple[float, float]:
    """On four batches of full-resolution views: 1 / the standard deviation of the latents
    (the scaling factor that makes them unit-variance, as SD's 0.18215 does: the noise
    schedule assumes it) and the reconstruction PSNR (dB) of the posterior mode."""
    latents, errors = [], []
    for _ in range(4):
        pixels, _ = pretraining_batch(photos, settings.batch_size, settings.resolution, generator)
        posterior = vae.encode(pixels).latent_dist
        latents.append(posterior.sample())
        errors.append(F.mse_loss(vae.decode(posterior.mode()).sample, pixels).item())
    return 1.0 / torch.cat(latents).std().item(), psnr_of_mse(sum(errors) / len(errors))


def inpainting_loss(
    model: StableDiffusionFamily,
    pixels: torch.Tensor,
    prompts: list[str],
    masks: TrainingMaskConfig,
    prompt_dropout: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The base model's training objective: predict the noise of the latents given the masked
    image and a random training mask (RealFill's masks, so fine-tuning asks nothing new)."""
    size = pixels.shape[-1]
    mask = torch.stack([random_training_mask(size, size, masks, generator) for _ in pixels])
    latents, masked_latents = model.encode_images(torch.cat([pixels, pixels * (1 - mask)])).chunk(2)
    dropped = torch.rand(len(prompts), generator=generator) < prompt_dropout
    conditioning = model.encode_prompt(
        ["" if d else p for p, d in zip(prompts, dropped, strict=True)]
    )
    noisy, timesteps, target = model.add_noise(latents, torch.randn_like(latents))
    prediction = model.denoise(
        noisy, timesteps, model.latent_mask(mask), masked_latents, conditioning
    )
    return F.mse_loss(prediction, target)


def train_unet(
    model: StableDiffusionFamily,
    photos: dict,
    settings: PretrainSettings,
    generator: torch.Generator,
) -> float:
    """Train the UNet, half resolution first; keep the moving average of its weights. Return
    the mean loss of the last steps."""
    unet = model.unet
    unet.train().requires_grad_(True)
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay))
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings.unet_learning_rate)
    total = settings.low_resolution_steps + settings.full_resolution_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, settings.warmup_steps, total)
    )
    masks = TrainingMaskConfig()
    bf16 = settings.unet_precision == "bf16-mixed"
    recent: list[float] = []
    bar = tqdm(range(total), desc="unet", unit="step")
    for step in bar:
        low = step < settings.low_resolution_steps
        size = settings.resolution // 2 if low else settings.resolution
        pixels, prompts = pretraining_batch(photos, settings.batch_size, size, generator)
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = inpainting_loss(
                model, pixels, prompts, masks, settings.prompt_dropout, generator
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        ema.update_parameters(unet)
        recent = (recent + [loss.item()])[-50:]
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", size=size)
    unet.load_state_dict(ema.module.state_dict())
    unet.eval().requires_grad_(False)
    return sum(recent) / len(recent)


def save_model(model: StableDiffusionFamily, out: Path, record: dict) -> None:
    """Write the diffusers folder (UNet and autoencoder weights in fp16, loaded back as fp32 by
    diffusers; the small text encoder in fp32) and `pretraining.json`, the settings and
    figures of the run. It replaces `out` only once complete, and only an earlier model."""
    for component in (model.unet, model.vae):  # safetensors stores contiguous tensors only
        component.to(dtype=torch.float16, memory_format=torch.contiguous_format)
    pipe = StableDiffusionInpaintPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=model.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    with staged_directory(out, MODEL_FOLDER_ENTRIES, legacy_model_folder) as staging:
        pipe.save_pretrained(staging, safe_serialization=True)
        (staging / PRETRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def pretrain(out: Path, settings: PretrainSettings) -> Path:
    """Train the small inpainting model and write it to `out` (a diffusers folder, replaced
    if it holds an earlier model, refused if it holds anything else)."""
    check_replaceable(
        out, MODEL_FOLDER_ENTRIES, legacy_model_folder
    )  # before the half hour, not after it
    check_writable_folder(Path(out).parent, "--out")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    photos = bundled_photos()
    model = StableDiffusionFamily(build_small_components(SmallModelConfig(), settings.seed))
    crop_psnr = train_autoencoder(model.vae, photos, settings, generator)
    scaling, autoencoder_psnr = measure_autoencoder(model.vae, photos, settings, generator)
    model.vae.register_to_config(scaling_factor=scaling)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model.unet.to(memory_format=memory_format)
    model.vae.to(memory_format=memory_format)
    unet_loss = train_unet(model, photos, settings, generator)
    record = {
        "settings": asdict(settings),
        "architecture": asdict(SmallModelConfig()),
        "autoencoder_training_psnr_db": round(crop_psnr, 2),
        "autoencoder_psnr_db": round(autoencoder_psnr, 2),
        "latent_scaling_factor": scaling,
        "final_unet_loss": round(unet_loss, 5),
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    save_model(model, Path(out), record)
    print(json.dumps(record, indent=2))
    return Path(out)


DEFAULT_OUT = Path("models/small-inpainting")
"""Where the repository ships the model `configs/small.yaml` fine-tunes."""


def main(args: list[str] | None = None) -> Path:
    """Parse the command line and pretrain; bad input ends in one line, not a traceback."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(
        prog="python -m realfill.pretrain",
        description=__doc__,
        formatter_class=DefaultHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output model folder")
    parser.add_class_arguments(PretrainSettings, nested_key=None)
    with exit_on_user_error():
        config = parser.parse_args(args)
        settings = PretrainSettings(**{f.name: config[f.name] for f in fields(PretrainSettings)})
        return pretrain(config.out, settings)


if __name__ == "__main__":
    main()
