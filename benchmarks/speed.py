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
  per-step cost from the fixed encode/decode cost), FLOPs and MFU, on the target's
  hole-centred square (512x512 completions, as the targets count them; `--keep_aspect` not);
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
import ast
import contextlib
import datetime
import itertools
import platform
import sys
import tempfile
from pathlib import Path

import torch
import torch._inductor.config as inductor_config

sys.path.insert(0, str(Path(__file__).resolve().parent))

from architecture import RandomStableDiffusion2Inpainting  # noqa: E402
from measure import (  # noqa: E402
    matmul_peak,
    measure_data,
    measure_sampling,
    measure_training,
    training_batch,
    training_flops,
)
from speed_table import file_stem, markdown, save  # noqa: E402
from square_scene import square_scene  # noqa: E402

from realfill.data import SceneDataModule  # noqa: E402
from realfill.modules import (  # noqa: E402
    CompileSettings,
    RealFillModule,
    TinyStableDiffusionInpainting,
)

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["data", "training_24gb", "unmerged", "channels_last", "large_batch"]
SCALES = {
    "full": {
        "resolution": 512,
        "batch_size": 16,
        "small_batch": 4,
        "sampling_batch": 16,
        "large_sampling_batch": 64,
        "sampling_steps": (5, 15),  # two timed runs: per-step cost apart from the fixed cost
    },
    "tiny": {
        "resolution": 64,
        "batch_size": 4,
        "small_batch": 2,
        "sampling_batch": 4,
        "large_sampling_batch": 8,
        "sampling_steps": (1, 3),
    },
}


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


def inductor_setting(text: str) -> tuple[str, object]:
    """`KEY=VALUE` as a torch._inductor.config setting, the value read as a Python literal
    (a bare word stays a string): `force_layout_optimization=True`, `triton.cudagraphs=1`."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    if key not in inductor_config.get_config_copy():
        raise argparse.ArgumentTypeError(f"torch._inductor.config has no setting {key!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["auto", "full", "tiny"], default="auto")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--scene", default=str(REPO / "examples" / "motorcycle"))
    parser.add_argument(
        "--keep_aspect",
        action="store_true",
        help="sample the scene's target as it is; by default its hole-centred square, so that "
        "a candidate is the 512x512 completion the targets count (see square_scene.py)",
    )
    parser.add_argument("--num_workers", type=int, default=4, help="dataloader workers")
    parser.add_argument(
        "--compile",
        nargs="+",
        choices=["regional", "whole", "sampling"],
        default=[],
        help="also time training with the UNet under torch.compile (its repeated blocks, or "
        "whole) and the VAE and text encoders compiled, or sampling with the whole UNet compiled "
        "for sampling (`compile.sampling`): a fresh model each",
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
    parser.add_argument(
        "--inductor",
        nargs="+",
        type=inductor_setting,
        default=[],
        metavar="KEY=VALUE",
        help="torch._inductor.config settings for every compiled variant (recorded with the "
        "results), e.g. force_layout_optimization=True",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.sampling_only and set(args.compile) - {"sampling"}:
        parser.error("--sampling_only takes only --compile sampling")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with inductor_config.patch(dict(args.inductor)):
        return measure(args)


def measure(args: argparse.Namespace) -> dict:
    """Take the measurements `args` ask for, saving each as it comes; return them all."""

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
    if args.inductor:
        results["inductor_config"] = dict(args.inductor)

    def record(key: str, value: dict) -> None:
        results[key] = value
        print(f"{key}: {value}", flush=True)
        save(results, out)

    scratch_folder = (
        contextlib.nullcontext(None)
        if args.keep_aspect
        else tempfile.TemporaryDirectory(prefix="square-scene-")
    )
    with scratch_folder as scratch:  # the square scene is loaded here, then removed
        scene_dir = args.scene if scratch is None else square_scene(args.scene, scratch)
        datamodule = SceneDataModule(
            scene_dir,
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
            sizes["sampling_steps"],
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
        save(results, out)
    if "unmerged" in args.only:
        record(
            "sampling_unmerged",
            measure_sampling(
                *sampling_args,
                sizes["sampling_batch"],
                sizes["sampling_steps"],
                peak,
                per_candidate,
                merge_adapters=False,
            ),
        )
    if "large_batch" in args.only:
        record(
            "sampling_large_batch",
            measure_sampling(
                *sampling_args,
                sizes["large_sampling_batch"],
                sizes["sampling_steps"],
                peak,
                per_candidate,
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
            measure_sampling(
                *sampling_args,
                sizes["sampling_batch"],
                sizes["sampling_steps"],
                peak,
                per_candidate,
            ),
        )
    small_batch = {k: v[: sizes["small_batch"]] for k, v in batch.items()}
    profiles_24gb = "training_24gb" in args.only and not args.sampling_only
    if profiles_24gb:  # the useful work, counted without checkpointing's recomputation
        small_flops = training_flops(module, small_batch, device, dtype)
    del module, sampling_args

    if profiles_24gb:
        small = build_module(scale, device, dtype, gradient_checkpointing=True)
        record(
            "training_24gb",
            measure_training(small, small_batch, device, dtype, args.steps, peak, small_flops),
        )
        del small
    for kind, mode in itertools.product(args.compile, args.compile_modes):
        # torch.compile's caches are per code object: without a reset, a variant's first step
        # would be timed against the previous variants' cache entries and recompile limit
        torch._dynamo.reset()
        module = build_module(
            scale,
            device,
            dtype,
            compile=CompileSettings(
                denoiser=kind != "sampling",
                regional=kind == "regional",
                encoders=kind != "sampling",
                sampling=kind == "sampling",
                backend=args.compile_backend,
                mode=None if mode == "default" else mode,
            ),
        )
        suffix = "" if mode == "default" else f"_{mode.replace('-', '_')}"
        variant = ("whole" if kind == "sampling" else kind) + suffix
        if kind == "sampling":
            record(
                f"sampling_compiled_{variant}",
                measure_sampling(
                    module,
                    datamodule,
                    device,
                    dtype,
                    sizes["sampling_batch"],
                    sizes["sampling_steps"],
                    peak,
                    per_candidate,
                    profile_to=profile_file(f"sampling_compiled_{variant}"),
                ),
            )
        else:
            module.compile_for_training()
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
