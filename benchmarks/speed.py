"""Speed and memory of RealFill's two costs: LoRA fine-tuning and candidate sampling.

    python benchmarks/speed.py            # full-size SD2 inpainting on a GPU; tiny on a CPU
    python benchmarks/speed.py --scale tiny --steps 3

On a GPU it builds Stable Diffusion 2 inpainting at full size from its published configs (random
weights, no download; see `architecture.py`) and measures, in bf16 autocast with frozen weights
stored in bf16 and LoRA weights and optimizer state in fp32, as `configs/realfill.yaml` trains:

- the device's bf16 matmul peak (measured here, the denominator of MFU);
- a training step (forward, backward, AdamW) at batch 16, 512 px, LoRA rank 8: seconds,
  samples/s, FLOPs counted by `torch.utils.flop_counter`, MFU, peak memory;
- the same in the 24 GB profile: batch 4 with gradient checkpointing (4 of them make one
  batch-16 step with `trainer.accumulate_grad_batches=4`);
- the data pipeline: samples/s `SceneDataModule` delivers, against what training consumes;
- sampling: candidates/min at 200 DDPM steps (two runs of different step counts separate the
  per-step cost from the fixed encode/decode cost), FLOPs and MFU;
- variants (`--only` picks): sampling with the LoRA adapters unmerged, channels-last weights
  for training and sampling, a sampling batch of 64; `--compile` adds training under
  `torch.compile` (the UNet whole or its repeated blocks, with the encoders; `--compile_modes`)
  and sampling with the whole UNet compiled for sampling (`--compile sampling`);
- with `--profile`, where a training step and sampling steps spend their time: the top
  operators and how busy the GPU is (a low figure means the host cannot keep it fed).

Each measurement is saved as it comes, to `benchmarks/results/<device>-<date>.{json,md}`, so a
run cut off at a time limit keeps what it measured. On a CPU everything runs at tiny scale so
the script cannot rot, and the results say the figures are not meaningful.
"""

import argparse
import datetime
import itertools
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from architecture import RandomStableDiffusion2Inpainting  # noqa: E402

from realfill.data import SceneDataModule  # noqa: E402
from realfill.io import write_json, write_text  # noqa: E402
from realfill.modules import RealFillModule, TinyStableDiffusionInpainting  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["data", "training_24gb", "unmerged", "channels_last", "large_batch"]
SCALES = {
    "full": {
        "resolution": 512,
        "batch_size": 16,
        "small_batch": 4,
        "sampling_batch": 16,
        "large_sampling_batch": 64,
    },
    "tiny": {
        "resolution": 64,
        "batch_size": 4,
        "small_batch": 2,
        "sampling_batch": 4,
        "large_sampling_batch": 8,
    },
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    """Mean seconds of `fn` over `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """Measured dense matmul throughput in FLOP/s: the MFU denominator."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, repeats=20, warmup=5)
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

    def forward_backward() -> None:
        with autocast:
            loss = module.masked_loss(batch)
        loss.backward()
        optimizer.zero_grad(set_to_none=True)

    reset_peak_memory(device)
    first = timed(step, device, repeats=1, warmup=0)  # compilation and autotuning included
    seconds = timed(step, device, repeats=steps, warmup=2)  # CUDA graphs record on the 2nd
    memory = peak_memory_gib(device)
    flops = flops or counted_flops(forward_backward)
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
    """Samples per second the training dataloader delivers (its workers included)."""
    loader = iter(datamodule.train_dataloader())
    next(loader)  # workers started
    start = time.perf_counter()
    count = sum(next(loader)["pixels"].shape[0] for _ in range(batches))
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


def build_module(
    scale: str, device: torch.device, dtype: torch.dtype, **switches
) -> RealFillModule:
    """RealFillModule (LoRA rank 8, text encoder adapted) on the scale's base model."""
    base = (
        RandomStableDiffusion2Inpainting() if scale == "full" else TinyStableDiffusionInpainting()
    )
    module = RealFillModule(base, **switches)
    module.base_model.cast_frozen(dtype)
    return module.to(device)


def markdown(results: dict) -> str:
    """The results as the table the README quotes (rows for what was measured)."""

    def memory(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f} GiB"

    def training_row(label: str, key: str) -> list[str]:
        if key not in results:
            return []
        r = results[key]
        return [
            f"| {label}, batch {r['batch_size']} | {r['seconds_per_step']:.3f} s/step "
            f"({r['samples_per_second']:.1f} samples/s, VAE encode {r['vae_encode_seconds']:.3f} s)"
            f", MFU {100 * r['mfu']:.1f}%, {memory(r['peak_memory_gib'])}, "
            f"first step {r['first_step_seconds']:.1f} s |"
        ]

    def sampling_row(label: str, key: str) -> list[str]:
        if key not in results:
            return []
        r = results[key]
        return [
            f"| {label}, batch {r['batch_size']}, {r['denoising_steps']} DDPM steps | "
            f"{r['candidates_per_minute']:.1f} candidates/min (64 in "
            f"{r['seconds_for_64_candidates']:.1f} s), MFU {100 * r['mfu']:.1f}%, "
            f"{memory(r['peak_memory_gib'])}, first call {r['first_call_seconds']:.1f} s |"
        ]

    def compiled_rows(kind: str) -> list[str]:
        """Rows of the torch.compile variants of `kind` ("training" or "sampling"), e.g.
        `training_compiled_whole` or `sampling_compiled_whole_reduce_overhead`."""
        prefix = f"{kind}_compiled_"
        row = training_row if kind == "training" else sampling_row
        compiled = "UNet ({}), VAE encoder, text encoder" if kind == "training" else "UNet ({})"
        variants = [key.removeprefix(prefix) for key in results if key.startswith(prefix)]
        return [
            line
            for variant in variants
            for line in row(
                f"{kind}, torch.compile: " + compiled.format(variant.replace("_", " ")),
                prefix + variant,
            )
        ]

    lines = [
        f"# Speed: {results['device']} ({results['date']}, {results['scale']} scale)",
        "",
        results["note"],
        "",
        f"Measured {results['dtype']} matmul peak: {results['matmul_peak_tflops']:.1f} TFLOP/s. "
        + (
            f"FLOPs counted by torch.utils.flop_counter: training "
            f"{results['training']['tflop_per_step']:.3g} TFLOP per step."
            if "training" in results
            else "Sampling only."
        ),
        "",
        "| measurement | value |",
        "|---|---|",
        *training_row("training, eager", "training"),
        *training_row("training, channels-last", "training_channels_last"),
        *compiled_rows("training"),
        *training_row("24 GB profile: gradient checkpointing", "training_24gb"),
        *sampling_row("sampling (LoRA merged into the weights)", "sampling"),
        *sampling_row("sampling, LoRA adapters unmerged", "sampling_unmerged"),
        *sampling_row("sampling, channels-last", "sampling_channels_last"),
        *sampling_row("sampling, larger batch", "sampling_large_batch"),
        *compiled_rows("sampling"),
    ]
    for key, value in list(results.items()):
        if isinstance(value, dict) and "profile" in value:
            r = results[key]["profile"]
            busy = (
                ""
                if r["device_busy_seconds"] is None
                else f", device busy {r['device_busy_seconds']:.3f} s "
                f"({100 * r['device_busy_fraction']:.0f}%)"
            )
            lines.append(
                f"| {key} profile ({r['table']}) | wall {r['wall_seconds']:.3f} s per call{busy}, "
                f"{r['operator_calls']} aten calls |"
            )
    if "data" in results:
        lines.append(
            f"| data pipeline | {results['data']['samples_per_second']:.0f} samples/s "
            f"delivered vs {results['training']['samples_per_second']:.1f} consumed |"
        )
    if "end_to_end_minutes" in results:
        lines.append(
            f"| 2000 bare training steps + sampling 64 candidates (no ranking, no Lightning; "
            f"benchmarks/end_to_end.py times the whole job) | "
            f"{results['end_to_end_minutes']:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def file_stem(results: dict) -> str:
    """`<device>-<date>`: the results files' name."""
    return f"{results['device'].replace(' ', '_').replace('/', '_')}-{results['date']}"


def save(results: dict, out: Path) -> None:
    """Write the results so far (JSON and table), atomically: a later measurement that runs out
    of time leaves the earlier ones on disk."""
    stem = file_stem(results)
    write_json(results, out / f"{stem}.json")
    write_text(markdown(results), out / f"{stem}.md")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["auto", "full", "tiny"], default="auto")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--scene", default=str(REPO / "examples" / "motorcycle"))
    parser.add_argument("--num_workers", type=int, default=4, help="dataloader workers")
    parser.add_argument(
        "--compile",
        nargs="+",
        choices=["regional", "whole", "sampling"],
        default=[],
        help="also time training with the UNet under torch.compile (its repeated blocks, or "
        "whole) and the VAE and text encoders compiled, or sampling with the whole UNet compiled "
        "for sampling (`compile_sampling`): a fresh model each",
    )
    parser.add_argument(
        "--compile_backend", default="inductor", help="torch.compile backend for --compile"
    )
    parser.add_argument(
        "--compile_modes",
        nargs="+",
        default=["default"],
        help='torch.compile modes to time each --compile kind in, e.g. "default reduce-overhead"',
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile a training step and sampling steps: top operators, GPU busy fraction",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        choices=VARIANTS,
        default=VARIANTS,
        help="measure only these variants (training and sampling always run; none if empty): "
        "a short lease",
    )
    parser.add_argument(
        "--sampling_only",
        action="store_true",
        help="measure sampling alone (no training step, no training variants): a short lease",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.sampling_only and set(args.compile) - {"sampling"}:
        parser.error("--sampling_only takes only --compile sampling")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scale = args.scale if args.scale != "auto" else ("full" if device.type == "cuda" else "tiny")
    sizes = SCALES[scale]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.machine()} x{torch.get_num_threads()}"
    )
    out = Path(args.out)
    torch.backends.cudnn.benchmark = True  # trainer.benchmark in configs/realfill.yaml
    peak = matmul_peak(device, dtype, 8192 if device.type == "cuda" else 1024)
    print(f"{name}: {dtype} matmul peak {peak / 1e12:.1f} TFLOP/s", flush=True)
    results = {
        "device": name,
        "date": datetime.date.today().isoformat(),
        "scale": scale,
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "note": (
            "Full-size SD2 inpainting (random weights), 512 px, LoRA rank 8, bf16 autocast with "
            "frozen weights in bf16, LoRA weights and AdamW state in fp32."
            if scale == "full"
            else "Tiny model on a CPU: these figures only show the benchmark runs; they are "
            "not meaningful for speed."
        ),
        "matmul_peak_tflops": peak / 1e12,
    }

    def record(key: str, value: dict) -> None:
        results[key] = value
        print(f"{key}: {value}", flush=True)
        save(results, out)

    datamodule = SceneDataModule(
        args.scene,
        resolution=sizes["resolution"],
        batch_size=sizes["batch_size"],
        num_workers=args.num_workers,
    )
    module = build_module(scale, device, dtype)
    batch = training_batch(datamodule, sizes["batch_size"], device)

    def profile_file(name: str) -> Path | None:
        return out / f"{file_stem(results)}-profile-{name}.txt" if args.profile else None

    if not args.sampling_only:
        record(
            "training",
            measure_training(
                module, batch, device, dtype, args.steps, peak, profile_to=profile_file("training")
            ),
        )
    flops = results["training"]["tflop_per_step"] * 1e12 if "training" in results else None
    if "data" in args.only:
        record("data", {"samples_per_second": measure_data(datamodule, batches=args.steps)})
    sampling_args = (module, datamodule, device, dtype)
    record(
        "sampling",
        measure_sampling(
            *sampling_args,
            sizes["sampling_batch"],
            (5, 15),
            peak,
            profile_to=profile_file("sampling"),
        ),
    )
    per_candidate = results["sampling"]["tflop_per_candidate"] * 1e12
    if "training" in results:
        results["end_to_end_minutes"] = (
            2000 * results["training"]["seconds_per_step"]
            + results["sampling"]["seconds_for_64_candidates"]
        ) / 60
    if "unmerged" in args.only:
        record(
            "sampling_unmerged",
            measure_sampling(
                *sampling_args,
                sizes["sampling_batch"],
                (5, 15),
                peak,
                per_candidate,
                merge_adapters=False,
            ),
        )
    if "large_batch" in args.only:
        record(
            "sampling_large_batch",
            measure_sampling(
                *sampling_args, sizes["large_sampling_batch"], (5, 15), peak, per_candidate
            ),
        )
    if "channels_last" in args.only:
        module.to(memory_format=torch.channels_last)
        if not args.sampling_only:
            record(
                "training_channels_last",
                measure_training(module, batch, device, dtype, args.steps, peak, flops),
            )
        record(
            "sampling_channels_last",
            measure_sampling(*sampling_args, sizes["sampling_batch"], (5, 15), peak, per_candidate),
        )
    del module, sampling_args

    if "training_24gb" in args.only and not args.sampling_only:
        small = build_module(scale, device, dtype, gradient_checkpointing=True)
        small_batch = {k: v[: sizes["small_batch"]] for k, v in batch.items()}
        record(
            "training_24gb",
            measure_training(small, small_batch, device, dtype, args.steps, peak),
        )
        del small
    for kind, mode in itertools.product(args.compile, args.compile_modes):
        module = build_module(
            scale,
            device,
            dtype,
            compile_denoiser=kind != "sampling",
            compile_regional=kind == "regional",
            compile_encoders=kind != "sampling",
            compile_sampling=kind == "sampling",
            compile_backend=args.compile_backend,
            compile_mode=None if mode == "default" else mode,
        )
        module.compile_for_training()
        variant = ("whole" if kind == "sampling" else kind) + (
            "" if mode == "default" else f"_{mode}"
        )
        variant = variant.replace("-", "_")
        if kind == "sampling":
            record(
                f"sampling_compiled_{variant}",
                measure_sampling(
                    module,
                    datamodule,
                    device,
                    dtype,
                    sizes["sampling_batch"],
                    (5, 15),
                    peak,
                    per_candidate,
                    profile_to=profile_file(f"sampling_compiled_{variant}"),
                ),
            )
        else:
            record(
                f"training_compiled_{variant}",
                measure_training(
                    module,
                    batch,
                    device,
                    dtype,
                    args.steps,
                    peak,
                    flops,
                    profile_to=profile_file(f"training_compiled_{variant}"),
                ),
            )
        del module
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
