"""Sampling completions from a (fine-tuned) base model: one implementation for fit and sample."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from peft.tuners.lora import LoraLayer
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from realfill.data import resized_conditioning
from realfill.data.augment import resized_size
from realfill.modules.base_model import InpaintingBaseModel
from realfill.selection.settings import SamplingDtype
from realfill.stopping import check_stop


class SamplingCanvas(NamedTuple):
    """Where a target is sampled. ``size`` is the target at the training scale (its shorter
    side the sampling resolution), its aspect kept to the nearest pixel; ``canvas`` is that
    size padded up to the next multiple the denoiser takes (`resized_conditioning` pads, and
    the sample is cropped back to ``size``). Both are (width, height)."""

    size: tuple[int, int]
    canvas: tuple[int, int]


def sampling_canvas(width: int, height: int, resolution: int, multiple: int) -> SamplingCanvas:
    """The sampling size of a ``width`` x ``height`` target: scaled so its shorter side is
    ``resolution`` (the training scale), then padded to a multiple of ``multiple`` (the base
    model's `sampling_multiple`) instead of stretched to it, so a 4:3 photo keeps 4:3."""
    scaled_height, scaled_width = resized_size(height, width, resolution)

    def padded(side: int) -> int:
        return -(-side // multiple) * multiple

    return SamplingCanvas(
        (scaled_width, scaled_height), (padded(scaled_width), padded(scaled_height))
    )


def frozen_dtype(base_model: InpaintingBaseModel) -> torch.dtype:
    """The dtype the denoiser's frozen weights are stored in (the compute dtype)."""
    return next(p.dtype for n, p in base_model.denoiser.named_parameters() if "lora_" not in n)


def candidate_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    """One generator per candidate, seeded by it, on the device that samples: every noise
    draw (initial latents, each DDPM step's noise) is made there. With CPU generators the host
    draws each step's noise and copies it over, time in which an accelerator that has caught
    up waits (measured in docs/performance.md)."""
    return [torch.Generator(device).manual_seed(seed) for seed in seeds]


def sampling_batch_size(requested: int, device: torch.device) -> int:
    """Candidates sampled together: one at a time on the CPU, where batched convolutions round
    differently with the batch size and a candidate would not be reproduced bit-for-bit by its
    seed alone; `requested` on an accelerator."""
    return 1 if device.type == "cpu" else requested


def padded_batch(seeds: list[int], batch_size: int) -> list[int]:
    """`seeds` filled up to `batch_size` with repeats of its last seed. A compiled denoiser is
    specialized to its batch: the last, partial batch of a sampling run is padded (and the extra
    candidates dropped) rather than compiled again, which costs minutes on a GPU against less
    than one batch of sampling."""
    return seeds + seeds[-1:] * (batch_size - len(seeds))


@contextmanager
def merged_adapters(model: nn.Module) -> Iterator[None]:
    """Fold each active LoRA update into its frozen weight for the duration, adapters off: one
    matmul per adapted layer instead of three plus dropout, an add and a scale, as diffusers'
    `fuse_lora` samples. The update is summed in fp32 and rounded once to the weight's dtype.
    It is written into the weight's own storage, so every weight keeps its address: CUDA graphs
    (compile mode "reduce-overhead") hold weights by address and record again when one moves.
    After, the frozen weights hold their original values again (bit-identical) and the adapters
    are back on, with every parameter's `requires_grad` as it was."""
    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and not m.disable_adapters]
    requires_grad = {p: p.requires_grad for p in model.parameters()}
    originals: list[torch.Tensor] = []
    try:
        for layer in layers:
            weight = layer.get_base_layer().weight
            merged = weight.data.to(torch.float32, copy=True)
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    merged += layer.get_delta_weight(adapter).float()
            originals.append(weight.data.clone())
            weight.data.copy_(merged)
            layer.enable_adapters(False)
        yield
    finally:
        for layer, original in zip(layers, originals, strict=False):
            layer.get_base_layer().weight.data.copy_(original)
            layer.enable_adapters(True)
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)


def sampling_dtype_of(
    base_model: InpaintingBaseModel, sampling_dtype: SamplingDtype
) -> torch.dtype:
    """The torch dtype `sampling_dtype` names for this model."""
    return frozen_dtype(base_model) if sampling_dtype == "compute" else torch.float32


@contextmanager
def in_dtype(base_model: InpaintingBaseModel, dtype: torch.dtype) -> Iterator[None]:
    """Run with every floating-point weight and buffer in `dtype`, autocast off, the way a
    stock diffusers pipeline loaded in that dtype runs; each one's stored tensor is put back
    after (the fp32 adapters, frozen weights kept in half precision). Upcast frozen weights
    keep the rounding of their half-precision storage; the arithmetic is fp32. Under autocast
    every GroupNorm and the UNet's output would run in fp32. Nothing changes when every weight
    is already in `dtype`."""
    tensors = [
        t
        for t in [*base_model.parameters(), *base_model.buffers()]
        if t.is_floating_point() and t.dtype != dtype
    ]
    if not tensors:
        yield
        return
    originals = [t.data for t in tensors]
    device = next(base_model.parameters()).device
    try:
        for tensor in tensors:
            tensor.data = tensor.data.to(dtype)
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        for tensor, original in zip(tensors, originals, strict=True):
            tensor.data = original


@contextmanager
def eager(model: nn.Module) -> Iterator[None]:
    """Run every module of `model` eagerly for the duration, whatever was compiled in place
    (`nn.Module.compile`, as `compile_for_training` does), and compiled after. Training's graphs
    do not fit sampling (no gradients, other shapes, adapters merged): recompiling them costs
    more than a minute on a GPU, for no faster sampling."""
    compiled = {m: m._compiled_call_impl for m in model.modules() if m._compiled_call_impl}
    try:
        for module in compiled:
            module._compiled_call_impl = None
        yield
    finally:
        for module, call in compiled.items():
            module._compiled_call_impl = call


@contextmanager
def compiled_denoiser(
    base_model: InpaintingBaseModel, backend: str = "inductor", mode: str | None = None
) -> Iterator[None]:
    """Run the denoiser through its sampling compilation (`sampling_denoiser_call`) for the
    duration; eager again after."""
    denoiser = base_model.denoiser
    denoiser._compiled_call_impl = base_model.sampling_denoiser_call(backend, mode)
    try:
        yield
    finally:
        denoiser._compiled_call_impl = None


def stop_checked_step(pipe, step: int, timestep, callback_kwargs: dict) -> dict:
    """A diffusers `callback_on_step_end`: stop if asked to (see `check_stop`), else go on."""
    check_stop()
    return callback_kwargs


def raise_on_sigterm(trainer) -> None:
    """Raise Lightning's `SIGTERMException` once its handler has recorded a SIGTERM."""
    if trainer.received_sigterm:
        raise SIGTERMException()


FIRST_BATCH_COMPILES = "the first batch compiles if its shapes are new: minutes"
"""Shown beside the sampling bar of a compiled denoiser until its first batch is done."""


@torch.no_grad()
def generate(
    base_model: InpaintingBaseModel,
    target: Image.Image,
    mask: Image.Image,
    seeds: Sequence[int],
    prompt: str,
    resolution: int,
    num_inference_steps: int = 200,
    scheduler: str | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 4,
    merge_adapters: bool = True,
    compile_denoiser: bool = False,
    compile_backend: str = "inductor",
    compile_mode: str | None = None,
    sampling_dtype: SamplingDtype = "compute",
    progress: bool = True,
) -> list[Image.Image]:
    """Sample one raw completion per seed, at the target's training-scale size
    (`sampling_canvas`: sampled padded, returned cropped to the target's aspect).

    Each candidate draws all its randomness from its own seed's generator, on the sampling
    device (`candidate_generators`). On the CPU the candidates are sampled one at a time,
    because batched CPU convolutions round differently with the batch size: there a candidate
    is reproduced bit-for-bit by its seed alone. On an accelerator they go `batch_size` at a
    time, reproducible to float rounding on the same kind of device. With
    `merge_adapters` the denoiser samples with its LoRA folded into its weights (see
    `merged_adapters`): the same function, fewer kernels per step. With `compile_denoiser` the
    denoiser runs under torch.compile (`compile_backend`, `compile_mode`), compiled for sampling
    at the first call and reused by the next (every batch, the last and a call with fewer seeds
    included, is padded to `batch_size`, see `padded_batch`); otherwise, and for every other
    module, eagerly, whatever was compiled for training. An unset `scheduler` or
    `guidance_scale` is the base model's (`sampling_scheduler`, `sampling_guidance_scale`).
    Every weight is in the `sampling_dtype` for the duration (`in_dtype`).
    """
    if not seeds:  # a process of a multi-GPU run whose share of the seeds is empty
        return []
    if guidance_scale is None:
        guidance_scale = base_model.sampling_guidance_scale
    pipe = base_model.pipeline(scheduler)
    pipe.set_progress_bar_config(disable=True)
    size, canvas = sampling_canvas(*target.size, resolution, base_model.sampling_multiple)
    image, mask_image = resized_conditioning(target, mask, size, canvas)
    was_training = base_model.training
    base_model.eval()
    results: list[Image.Image] = []
    device = next(base_model.parameters()).device
    batch_size = max(1, sampling_batch_size(batch_size, device))
    if not compile_denoiser:  # a compiled denoiser samples whole batches, padded
        batch_size = min(batch_size, len(seeds))
    try:
        dtype = sampling_dtype_of(base_model, sampling_dtype)
        precision = in_dtype(base_model, dtype)
        merging = merged_adapters(base_model.denoiser) if merge_adapters else nullcontext()
        # the adapters' update is folded in fp32 and rounded once, to the sampling dtype
        widening = dtype.itemsize > frozen_dtype(base_model).itemsize
        outer, inner = (precision, merging) if widening else (merging, precision)
        compiling = (
            compiled_denoiser(base_model, compile_backend, compile_mode)
            if compile_denoiser
            else nullcontext()
        )
        bar = tqdm(total=len(seeds), desc="Sampling", unit="candidate", disable=not progress)
        if compile_denoiser:  # cleared after the first batch
            bar.set_postfix_str(FIRST_BATCH_COMPILES)
        with eager(base_model), outer, inner, compiling, bar:
            for start in range(0, len(seeds), batch_size):
                chunk = list(seeds[start : start + batch_size])
                drawn = padded_batch(chunk, batch_size) if compile_denoiser else chunk
                output = pipe(
                    prompt=[prompt] * len(drawn),
                    image=[image] * len(drawn),
                    mask_image=[mask_image] * len(drawn),
                    height=canvas[1],
                    width=canvas[0],
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    generator=candidate_generators(drawn, device),
                    callback_on_step_end=stop_checked_step,
                    **base_model.pipeline_arguments(),
                )
                results.extend(sample.crop((0, 0, *size)) for sample in output.images[: len(chunk)])
                bar.set_postfix_str("", refresh=False)
                bar.update(len(chunk))
    finally:
        base_model.train(was_training)
    return results
