"""Timing, FLOP counting, memory and profiling of RealFill's training step and sampling: the
measurements `speed.py` combines (a device synchronisation brackets every timed call)."""

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from realfill.data import SceneDataModule
from realfill.io import write_text
from realfill.modules import RealFillModule
from realfill.modules.sampling import sampling_canvas


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    """Mean seconds of `fn` over `repeats` calls after `warmup` untimed ones (0 for none)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / max(1, repeats)


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """Measured dense matmul throughput in FLOP/s, the best of three windows: the MFU
    denominator. On a GPU each window is about a quarter of a second (200 matmuls of 8192, after
    50 untimed), so that the clocks have risen: a low peak would inflate every MFU."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    repeats, warmup = (200, 50) if device.type == "cuda" else (5, 1)
    timed(lambda: a @ b, device, repeats=0, warmup=warmup)
    seconds = min(timed(lambda: a @ b, device, repeats=repeats, warmup=0) for _ in range(3))
    return 2 * size**3 / seconds


def counted_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` (matmuls and convolutions, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def training_batch(datamodule: SceneDataModule, batch_size: int, device: torch.device) -> dict:
    """One real training batch (references and target, augmented, random masks)."""
    dataset = datamodule.train_dataset
    samples = [dataset[i] for i in range(batch_size)]
    return {k: torch.stack([s[k] for s in samples]).to(device) for k in samples[0]}


def training_flops(
    module: RealFillModule, batch: dict, device: torch.device, dtype: torch.dtype
) -> int:
    """FLOPs of one training step's forward and backward (the optimizer's elementwise update
    is not counted). Count them on a module without gradient checkpointing: with it, the
    recomputed forward would count as work, though it only saves memory."""
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def forward_backward() -> None:
        with autocast:
            loss = module.masked_loss(batch)
        loss.backward()
        module.zero_grad(set_to_none=True)

    return counted_flops(forward_backward)


def measure_training(
    module: RealFillModule,
    batch: dict,
    device: torch.device,
    dtype: torch.dtype,
    steps: int,
    peak: float,
    flops: int | None = None,
    profile_to: Path | None = None,
) -> dict:
    """Time, FLOPs, MFU and peak memory of one optimizer step on `batch` (FLOPs counted unless
    given: a variant of the same step does the same arithmetic); with `profile_to`, where the
    step's time goes (see `profiled`)."""
    optimizer = module.configure_optimizers()["optimizer"]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step() -> None:
        with autocast:
            loss = module.masked_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    reset_peak_memory(device)
    first = timed(step, device, repeats=1, warmup=0)  # compilation and autotuning included
    seconds = timed(step, device, repeats=steps, warmup=2)  # CUDA graphs record on the 2nd
    memory = peak_memory_gib(device)
    flops = flops or training_flops(module, batch, device, dtype)
    encode = timed(lambda: module.encode_batch(batch), device, repeats=steps, warmup=1)
    batch_size = batch["pixels"].shape[0]
    results = {
        "batch_size": batch_size,
        "seconds_per_step": seconds,
        "first_step_seconds": first,
        "samples_per_second": batch_size / seconds,
        "vae_encode_seconds": encode,
        "tflop_per_step": flops / 1e12,
        "mfu": flops / seconds / peak,
        "peak_memory_gib": memory,
    }
    if profile_to is not None:
        results["profile"] = profiled(step, device, profile_to)
    return results


def profiled(fn: Callable[[], object], device: torch.device, path: Path, repeats: int = 2) -> dict:
    """Profile `repeats` calls of `fn`: write the top operators by device time, then by host
    time (CPU time only, on a CPU) to `path`, and return the wall time per call against the
    time the device was busy. A busy fraction well under 1 means the host (Python, dispatch,
    launches) cannot keep the GPU fed, which no kernel tuning fixes; the profiler's own
    overhead lowers it somewhat."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    fn()
    synchronize(device)
    start = time.perf_counter()
    with profile(activities=activities) as profiler:
        for _ in range(repeats):
            fn()
        synchronize(device)
    wall = (time.perf_counter() - start) / repeats
    events = profiler.key_averages()
    sort_by = "self_device_time_total" if cuda else "self_cpu_time_total"
    by_host = events.table(sort_by="self_cpu_time_total", row_limit=30) if cuda else ""
    write_text(events.table(sort_by=sort_by, row_limit=30) + "\n" + by_host, path)
    busy = device_busy_seconds(events) / repeats if cuda else None
    return {
        "wall_seconds": wall,
        "device_busy_seconds": busy,
        "device_busy_fraction": None if busy is None else busy / wall,
        "operator_calls": sum(e.count for e in events if e.key.startswith("aten::")) // repeats,
        "table": path.name,
    }


def device_busy_seconds(events) -> float:
    """Seconds the device ran kernels, from a profile's averaged events, as the profiler's own
    "Self CUDA time total" counts them: kernels only, since an operator's row and a user range
    (e.g. the optimizer step) repeat the time of the kernels they launched."""
    device = torch.autograd.DeviceType.CUDA
    kernels = (e for e in events if e.device_type == device and not e.is_user_annotation)
    return sum(e.self_device_time_total for e in kernels) / 1e6


def measure_data(datamodule: SceneDataModule, batches: int) -> float:
    """Samples per second the training dataloader delivers (its workers included). The
    batches the workers prefetch while the first is awaited are taken untimed."""
    loader = datamodule.train_dataloader()
    prefetched = loader.num_workers * (loader.prefetch_factor or 0)
    batches_in = iter(loader)
    for _ in range(1 + prefetched):  # workers started, their prefetched batches taken
        next(batches_in)
    start = time.perf_counter()
    count = sum(next(batches_in)["pixels"].shape[0] for _ in range(batches))
    return count / (time.perf_counter() - start)


def measure_sampling(
    module: RealFillModule,
    datamodule: SceneDataModule,
    device: torch.device,
    dtype: torch.dtype,
    batch_size: int,
    step_counts: tuple[int, int],
    peak: float,
    flops_per_candidate: float | None = None,
    target_steps: int = 200,
    merge_adapters: bool = True,
    profile_to: Path | None = None,
) -> dict:
    """Candidates/min at `target_steps` DDPM steps, from two timed runs of fewer steps (FLOPs
    per candidate counted unless given); `merge_adapters` as `generate` takes it."""
    scene = datamodule.scene
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    seeds = list(range(batch_size))

    def sample(steps: int) -> None:
        with autocast:
            module.generate(
                scene.target,
                scene.mask,
                seeds,
                resolution=datamodule.resolution,
                num_inference_steps=steps,
                batch_size=batch_size,
                merge_adapters=merge_adapters,
                progress=False,
            )

    width, height = sampling_canvas(
        *scene.target.size, datamodule.resolution, module.base_model.sampling_multiple
    ).canvas
    few, many = step_counts
    first = timed(lambda: sample(few), device, repeats=1, warmup=0)  # cuDNN autotuning included
    reset_peak_memory(device)
    t_few = timed(lambda: sample(few), device, repeats=1, warmup=0)
    t_many = timed(lambda: sample(many), device, repeats=1, warmup=0)
    per_step = (t_many - t_few) / (many - few)
    fixed = max(0.0, t_few - few * per_step)
    if per_step <= 0:  # noise swamped the steps' cost (tiny scale, a busy CPU): no split
        per_step, fixed = t_many / many, 0.0
    seconds = fixed + target_steps * per_step
    if flops_per_candidate is None:
        flops_few = counted_flops(lambda: sample(few))
        flops_many = counted_flops(lambda: sample(many))
        flops_per_step = (flops_many - flops_few) / (many - few)
        flops_per_candidate = (flops_few + (target_steps - few) * flops_per_step) / batch_size
    flops = flops_per_candidate * batch_size
    results = {
        "batch_size": batch_size,
        "size": f"{width}x{height}",
        "denoising_steps": target_steps,
        "seconds_per_denoising_step": per_step,
        "fixed_seconds": fixed,
        "first_call_seconds": first,
        "seconds_per_batch": seconds,
        "candidates_per_minute": 60 * batch_size / seconds,
        "seconds_for_64_candidates": seconds * math.ceil(64 / batch_size),
        "tflop_per_candidate": flops_per_candidate / 1e12,
        "tflop_per_batch": flops / 1e12,
        "mfu": flops / seconds / peak,
        "peak_memory_gib": peak_memory_gib(device),
    }
    if profile_to is not None:
        results["profile"] = profiled(lambda: sample(few), device, profile_to, repeats=1)
    return results
