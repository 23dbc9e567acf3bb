"""A training step of `configs/small.yaml` on this CPU, in each precision and weight layout.

    python benchmarks/cpu_step.py            # 32-true / bf16-mixed x NCHW / channels-last
    python benchmarks/cpu_step.py --steps 5 --config configs/small.yaml

Builds the module and one batch exactly as `realfill.fit` would (the config's base model, LoRA,
batch size and resolution), then times forward + backward + AdamW (the config's own
optimizer), with the VAE encoding of the batch split out (`measure.measure_training`, as
speed.py). FLOPs are counted by `torch.utils.flop_counter`; MFU is against this CPU's bf16
matmul throughput, measured first. Run it on a quiet machine: on 2 cores another process
halves every figure. Prints a markdown table and writes it, with the raw figures, to
`benchmarks/results/`.
"""

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import matmul_peak, measure_training  # noqa: E402

from realfill.data import SceneDataModule  # noqa: E402
from realfill.fit import RealFillCLI  # noqa: E402
from realfill.modules.realfill import RealFillModule, compute_dtype  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = [("32-true", False), ("32-true", True), ("bf16-mixed", False), ("bf16-mixed", True)]
CPU = torch.device("cpu")
PEAK_MATMUL_SIZE = 2048
"""Side of the matmuls whose measured throughput is the MFU denominator."""


def build(config: Path) -> tuple[RealFillModule, dict[str, torch.Tensor]]:
    """The config's module (LoRA added, frozen weights fp32) and one training batch."""
    cli = RealFillCLI(
        RealFillModule,
        SceneDataModule,
        parser_kwargs={"parser_mode": "omegaconf+"},
        auto_configure_optimizers=False,
        run=False,
        args=[
            "--config",
            str(config),
            "--trainer.logger=false",
            "--trainer.callbacks=[]",
            "--selection=null",
        ],
    )
    cli.datamodule.setup("fit")
    return cli.model, next(iter(cli.datamodule.train_dataloader()))


def measure(config: Path, precision: str, channels_last: bool, steps: int, peak: float) -> dict:
    """`measure_training` of one variant, on a freshly built module: step and VAE-encoding
    seconds, FLOPs and MFU against the bf16 matmul peak."""
    torch.manual_seed(0)
    module, batch = build(config)
    dtype = compute_dtype(precision)
    module.base_model.cast_frozen(dtype)
    if channels_last:
        module.base_model.to(memory_format=torch.channels_last)
    results = measure_training(module, batch, CPU, dtype, steps, peak)
    return {"precision": precision, "channels_last": channels_last, **results}


def table(rows: list[dict]) -> str:
    """Markdown: one row per variant, speed-up against the first (fp32, NCHW)."""
    lines = [
        "| precision | channels-last | step (s) | VAE encode (s) | GFLOP/step | MFU | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['precision']} | {row['channels_last']} | {row['seconds_per_step']:.3f} "
            f"| {row['vae_encode_seconds']:.3f} | {row['tflop_per_step'] * 1e3:.1f} "
            f"| {row['mfu']:.1%} | {rows[0]['seconds_per_step'] / row['seconds_per_step']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure every variant, print the table and write it; returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "small.yaml")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    peak = matmul_peak(CPU, torch.bfloat16, PEAK_MATMUL_SIZE)
    rows = [measure(args.config, p, cl, args.steps, peak) for p, cl in VARIANTS]
    report = table(rows)
    print(report)
    stamp = datetime.date.today().isoformat()
    name = f"cpu-step-{args.config.stem}-{stamp}"
    header = f"# CPU training step, {args.config.name}, {platform.processor() or 'cpu'}, "
    header += f"{torch.get_num_threads()} threads, {stamp}; MFU against the measured bf16 "
    header += f"matmul peak, {peak / 1e9:.0f} GFLOP/s\n\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(header + report + "\n")
    (args.out / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
