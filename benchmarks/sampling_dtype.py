"""How far bf16 sampling moves a candidate: a fitted run sampled three ways, same seeds.

- reference: the base weights loaded in fp32, fp32 arithmetic (`--trainer.precision=32-true`),
  as the reference implementation samples;
- float32: the weights as a bf16-mixed fit holds them (bf16), upcast, fp32 arithmetic
  (`sampling_dtype: float32`);
- compute: bf16 weights and arithmetic (`sampling_dtype: compute`).

For each pair, the masked PSNR between the two candidates of the same seed (how far the
arithmetic moves a sample), and each variant's masked PSNR against the ground truth (whether
it changes quality). The run must be a bf16-mixed fit of a scene with `target/gt.png`.

    python benchmarks/sampling_dtype.py --run runs/small --scene examples/motorcycle \
        --out runs/sampling_dtype --num_samples 8
"""

import argparse
import json
import statistics
from pathlib import Path

from PIL import Image

from realfill import api
from realfill.evaluation.metrics import image_to_tensor, mask_to_bool, masked_psnr

VARIANTS = {
    "reference": {"trainer.precision": "32-true", "sampling_dtype": "compute"},
    "float32": {"sampling_dtype": "float32"},
    "compute": {"sampling_dtype": "compute"},
}
"""Each variant's `realfill.sample` settings."""
PAIRS = (("float32", "reference"), ("compute", "reference"), ("compute", "float32"))
"""The variants compared candidate by candidate."""


def candidate(out: Path, variant: str, seed: int):
    """A variant's candidate as a tensor."""
    path = out / variant / "candidates" / f"seed{seed:05d}.png"
    return image_to_tensor(Image.open(path).convert("RGB"))


def measure(run: Path, scene: Path, out: Path, num_samples: int) -> dict:
    """Sample every variant (unless already sampled) and compare them."""
    for name, overrides in VARIANTS.items():
        if not (out / name / "scores.json").exists():
            api.sample(run, out=out / name, overrides={"num_samples": num_samples, **overrides})
    mask = mask_to_bool(Image.open(scene / "target" / "mask.png"))
    truth = image_to_tensor(Image.open(scene / "target" / "gt.png").convert("RGB"))
    seeds = range(num_samples)
    between = {
        f"{a} vs {b}": [
            masked_psnr(candidate(out, a, seed), candidate(out, b, seed), mask) for seed in seeds
        ]
        for a, b in PAIRS
    }
    quality = {v: [masked_psnr(candidate(out, v, s), truth, mask) for s in seeds] for v in VARIANTS}
    return {"run": str(run), "scene": str(scene), "between": between, "vs_ground_truth": quality}


def table(result: dict) -> str:
    """The measurement as markdown."""
    lines = ["| candidates compared | median dB | min dB |", "|---|---|---|"]
    for pair, values in result["between"].items():
        lines.append(f"| {pair} | {statistics.median(values):.1f} | {min(values):.1f} |")
    lines += ["", "| variant | mean masked PSNR vs ground truth |", "|---|---|"]
    for variant, values in result["vs_ground_truth"].items():
        lines.append(f"| {variant} | {statistics.fmean(values):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("--run", type=Path, required=True, help="a bf16-mixed fit's run dir")
    parse.add_argument("--scene", type=Path, required=True, help="its scene, with target/gt.png")
    parse.add_argument("--out", type=Path, required=True, help="where the variants are sampled")
    parse.add_argument("--num_samples", type=int, default=8, help="candidates per variant")
    options = parse.parse_args()
    result = measure(options.run, options.scene, options.out, options.num_samples)
    (options.out / "sampling_dtype.json").write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
