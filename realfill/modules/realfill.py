"""`RealFillModule`: LoRA fine-tuning of an inpainting model on one scene, masked objective."""

import dataclasses
from pathlib import Path

import lightning as L
import torch
from PIL import Image
from torch.optim.lr_scheduler import LambdaLR

from realfill.errors import ConfigError
from realfill.modules.base_model import InpaintingBaseModel
from realfill.modules.lora import LoraSettings
from realfill.modules.loss import known_region_weight, masked_mse
from realfill.modules.optim import build_optimizer, check_optimizer
from realfill.modules.sampling import generate
from realfill.modules.settings import CUDA_GRAPH_MODES, CompileSettings, OptimizationSettings

PRECISION_DTYPES = {
    "bf16-mixed": torch.bfloat16,
    "bf16-true": torch.bfloat16,
    "16-mixed": torch.float16,
    "16-true": torch.float16,
}


def random_stream(seed: int, rank: int, world_size: int, resumed_step: int) -> int:
    """The seed of one process's random stream: distinct for every rank and every step a fit
    resumes from (`seed + rank + world_size * step`), and `seed` itself for a fresh
    single-process fit, which stays reproducible by its seed alone."""
    return seed + rank + world_size * resumed_step


def check_prompt_dropout(prompt_dropout: float) -> None:
    """Refuse, in one line, a prompt-dropout probability out of range."""
    if not 0.0 <= prompt_dropout <= 1.0:
        raise ConfigError(f"model.prompt_dropout must be in [0, 1], got {prompt_dropout}")


def check_compile_mode(compile_mode: str | None, accumulate_grad_batches: int) -> None:
    """Refuse CUDA graphs with gradient accumulation: a replay writes its gradients where the
    previous micro-batch's still lie, and the sum comes out wrong (pytorch/pytorch#169545)."""
    if compile_mode in CUDA_GRAPH_MODES and accumulate_grad_batches > 1:
        raise ConfigError(
            f"model.compile.mode={compile_mode} (CUDA graphs) cannot accumulate gradients "
            f"(trainer.accumulate_grad_batches={accumulate_grad_batches}): set "
            "model.compile.mode to null, or accumulate_grad_batches to 1"
        )


HALF_WEIGHT_PRECISIONS = ("bf16-true", "16-true")
"""Trainer precisions that store every weight, trainable ones included, in half precision."""


def check_training_precision(precision: str) -> None:
    """Refuse to train under a precision that casts the LoRA weights to half precision after
    `setup`: AdamW's steps (learning rate 2e-4) round away on bf16 weights, which never train."""
    if str(precision) in HALF_WEIGHT_PRECISIONS:
        mixed = str(precision).replace("-true", "-mixed")
        raise ConfigError(
            f"trainer.precision={precision} would hold the LoRA weights in half precision, "
            f"where they do not train; use {mixed} (the frozen weights are stored in half "
            "precision either way)"
        )


def check_resolution(setting: str, resolution: int | None, base_model: InpaintingBaseModel) -> None:
    """Refuse, before training, a training or sampling resolution the denoiser cannot take: a
    multiple of the model's `size_multiple` (its latents halve evenly through every
    downsampling, and pack into patches for transformer denoisers), and at least twice it, so
    that the denoiser's deepest feature map is 2x2 or more (at 1x1 a GroupNorm with one
    channel per group has a single value to normalise, and fails). `setting` names it."""
    multiple = base_model.size_multiple
    if resolution is not None and (resolution % multiple or resolution < 2 * multiple):
        raise ConfigError(
            f"{setting}={resolution} must be a multiple of {multiple} and at least "
            f"{2 * multiple}, which {type(base_model).__name__} needs"
        )


def loss_scale(precision_plugin: object) -> float | None:
    """The gradient scaler's current loss scale under 16-mixed (it halves when a step's
    gradients overflow and the step is skipped); None under any other precision."""
    scaler = getattr(precision_plugin, "scaler", None)
    return None if scaler is None else scaler.get_scale()


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype frozen weights are stored in under a trainer precision (fp32 if unmixed)."""
    return PRECISION_DTYPES.get(str(precision), torch.float32)


class RealFillModule(L.LightningModule):
    """Fine-tunes LoRA adapters of an injected base model on a scene's references and target.

    The batch comes from `SceneDataModule`: images in [-1, 1], a training mask (1 = generate)
    and a known mask (0 over the target's hole). Pixels that are not known are blanked before
    the VAE sees them and their latents carry zero loss weight, so the target's missing region
    can never teach the model anything.
    """

    def __init__(
        self,
        base_model: InpaintingBaseModel,
        lora: LoraSettings = LoraSettings(),  # noqa: B008 (jsonargparse shows its fields)
        prompt: str = "a photo of sks",
        prompt_dropout: float = 0.1,
        optimization: OptimizationSettings = OptimizationSettings(),  # noqa: B008 (frozen)
        gradient_checkpointing: bool = False,
        channels_last: bool = False,
        compile: CompileSettings = CompileSettings(),  # noqa: B008 (frozen)
    ) -> None:
        """
        Args:
            base_model: The inpainting model plug-in (class_path), e.g.
                realfill.modules.StableDiffusionInpainting.
            lora: Adapter rank, alpha, dropout and target modules.
            prompt: The fixed prompt, with a rare identifier token.
            prompt_dropout: Probability of training a sample with the empty prompt.
            optimization: The optimizer, its learning rates and the warm-up.
            gradient_checkpointing: Recompute the denoiser's (and trained text encoders')
                activations in the backward pass: much less memory, about a third more
                compute. For 24 GB cards, with a smaller batch and
                trainer.accumulate_grad_batches.
            channels_last: Store the base model's convolution weights channels-last (NHWC),
                the layout oneDNN's and cuDNN's fastest convolution kernels use: on a 2-core
                CPU a small-model step ran 1.06-1.17x faster, 1.55-1.7x with bf16-mixed
                (benchmarks/cpu_step.py). Training and sampling alike; LoRA files are unchanged.
            compile: What torch.compile compiles, and how.
        """
        super().__init__()
        check_prompt_dropout(prompt_dropout)
        self.save_hyperparameters(ignore=["base_model"])
        self.base_model = base_model
        self.lora = dataclasses.replace(lora)
        self.optimization = optimization
        self.compile_settings = compile  # not `self.compile`: nn.Module's method
        self.base_model.add_lora(self.lora)
        check_optimizer(optimization.optimizer)
        if gradient_checkpointing:
            self.base_model.enable_gradient_checkpointing()
        self.prompt = prompt
        self.prompt_dropout = prompt_dropout
        self.strict_loading = False
        self._resumed_step = 0
        self._step_losses: list[torch.Tensor] = []
        self._loss_scale: float | None = None

    def setup(self, stage: str) -> None:
        self.base_model.cast_frozen(compute_dtype(self.trainer.precision))
        if self.hparams.channels_last:
            self.base_model.to(memory_format=torch.channels_last)
        if stage == "fit":
            resolution = getattr(self.trainer.datamodule, "resolution", None)
            if resolution is not None:
                check_resolution("data.resolution", resolution, self.base_model)
            check_training_precision(self.trainer.precision)
            check_compile_mode(self.compile_settings.mode, self.trainer.accumulate_grad_batches)
            self.compile_for_training()

    def on_fit_start(self) -> None:
        """Give each process, and each resumed fit, its own random stream (`random_stream`).
        `seed_everything` seeds every rank alike, and the ranks would draw the same noise,
        timesteps, prompt dropout and VAE posterior samples for their different images; a fit
        resumed at step k would draw again the examples, masks and noise of steps 0, 1, ..."""
        rank, resumed_step = self.trainer.global_rank, self._resumed_step
        if self.trainer.world_size > 1 or resumed_step:
            seed = random_stream(torch.initial_seed(), rank, self.trainer.world_size, resumed_step)
            torch.manual_seed(seed)

    def compile_for_training(self) -> None:
        """torch.compile the parts the compile switches name, in place (nothing by default)."""
        settings = self.compile_settings
        if settings.denoiser:
            self.base_model.compile_denoiser(settings.backend, settings.regional, settings.mode)
        if settings.encoders:
            self.base_model.compile_encoders(settings.backend, settings.mode)

    @property
    def compiles_for_training(self) -> bool:
        """Whether fit's first step compiles (the progress bar says so meanwhile)."""
        return self.compile_settings.for_training

    @property
    def uses_cuda_graphs(self) -> bool:
        """Whether the compile mode records CUDA graphs (whose outputs the next step reuses)."""
        return self.compile_settings.uses_cuda_graphs

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.masked_loss(batch)
        self._step_losses.append(loss.detach())
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Log the optimizer step's loss: the mean over its accumulated micro-batches and, in a
        multi-process fit, over the processes (what the step's gradient averages), not the
        last micro-batch of rank 0 alone. Note the loss scale, for `lr_scheduler_step`."""
        step_loss = torch.stack(self._step_losses).mean()
        self._step_losses.clear()
        self.log("train/loss", step_loss, prog_bar=True, sync_dist=self.trainer.world_size > 1)
        self._loss_scale = loss_scale(self.trainer.precision_plugin)

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Advance the warm-up by the optimizer steps taken: under 16-mixed the loss scaler
        skips a step whose gradients overflowed (and lowers its scale), and the warm-up would
        otherwise end that many steps early."""
        scale = loss_scale(self.trainer.precision_plugin)
        if scale is not None and self._loss_scale is not None and scale < self._loss_scale:
            return
        super().lr_scheduler_step(scheduler, metric)

    def encode_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents of the batch's images and of their masked copies, in one VAE call. Unknown
        pixels are blanked first. The frozen VAE runs in its storage dtype, autocast off: under
        autocast its GroupNorms would run in fp32 at full image resolution."""
        pixels = batch["pixels"] * batch["known_mask"]
        masked_pixels = pixels * (1.0 - batch["training_mask"])
        with torch.autocast(self.device.type, enabled=False):
            latents = self.base_model.encode_images(torch.cat([pixels, masked_pixels]))
        return latents.chunk(2)

    def masked_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The RealFill objective on one batch; unknown pixels contribute nothing."""
        if self.uses_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        known = batch["known_mask"]
        training_mask = batch["training_mask"]
        latents, masked_latents = self.encode_batch(batch)
        batch_size = latents.shape[0]
        prompts = self.base_model.encode_prompt([self.prompt, ""])
        use_empty = torch.rand(batch_size, device=self.device) < self.prompt_dropout
        conditioning = self.base_model.select_conditioning(prompts, use_empty.long())
        conditioning = self.base_model.sample_conditioning(conditioning, batch)
        noise = torch.randn_like(latents, dtype=torch.float32)
        noisy, timesteps, target = self.base_model.add_noise(latents, noise)
        prediction = self.base_model.denoise(
            noisy,
            timesteps,
            self.base_model.latent_mask(training_mask),
            masked_latents,
            conditioning,
        )
        weight = known_region_weight(known, latents.shape[-2:])
        return masked_mse(prediction.float(), target.float(), weight)

    def configure_optimizers(self):
        settings = self.optimization
        groups = self.base_model.trainable_parameter_groups(
            settings.denoiser_learning_rate, settings.text_encoder_learning_rate
        )
        optimizer = build_optimizer(
            settings.optimizer,
            groups,
            weight_decay=settings.weight_decay,
            betas=tuple(settings.adam_betas),
            eps=settings.adam_epsilon,
        )
        warmup = max(1, settings.warmup_steps)
        scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only the trainable (LoRA) weights: a checkpoint is MBs, not GBs."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {
            k: v for k, v in checkpoint["state_dict"].items() if k in trainable
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse, in one line, a checkpoint whose LoRA is not this model's (another rank or
        other adapted layers): it would not load, or load only in part. Note the step it
        resumes from, for `on_fit_start`."""
        self._resumed_step = checkpoint.get("global_step", 0)
        trainable = {n: p for n, p in self.named_parameters() if p.requires_grad}
        saved = checkpoint["state_dict"]
        problems = [
            f"{name} is {list(saved[name].shape)} there, {list(param.shape)} here"
            for name, param in trainable.items()
            if name in saved and saved[name].shape != param.shape
        ]
        problems += [f"{name} is only here" for name in sorted(trainable.keys() - saved.keys())]
        problems += [f"{name} is only there" for name in sorted(saved.keys() - trainable.keys())]
        if problems:
            raise ConfigError(
                f"the checkpoint's LoRA does not fit this model ({problems[0]}): resume with "
                "the model.lora settings it was trained with"
            )

    def generate(
        self, target: Image.Image, mask: Image.Image, seeds: list[int], **sampling
    ) -> list[Image.Image]:
        """Raw completions of `target`'s masked region, one per seed (see `sampling.generate`),
        the denoiser compiled for sampling if `compile.sampling` says so."""
        settings = self.compile_settings
        compiling = {
            "compile_denoiser": settings.sampling,
            "compile_backend": settings.backend,
            "compile_mode": settings.mode,
        }
        return generate(self.base_model, target, mask, seeds, self.prompt, **(compiling | sampling))

    def save_lora(self, directory: str | Path) -> None:
        """Write the adapters where stock diffusers' `load_lora_weights` reads them."""
        self.base_model.save_lora(Path(directory))
