"""How many PyTorch operators one training step dispatches, and which component issues them.

    python benchmarks/host_ops.py              # full-size SD2 inpainting, on the CPU
    python benchmarks/host_ops.py --scale tiny

Each operator costs the host some microseconds of Python, dispatch and kernel launch whatever
its size, so a component that issues many operators for little arithmetic (the text encoder
with its adapters, on a batch of two prompts) can leave the GPU waiting. The count does not
depend on the image size, so this runs the full-size architecture on the CPU at a small
resolution; `speed.py --profile` shows the matching GPU timeline on a GPU.
"""

import argparse
import collections
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from architecture import RandomStableDiffusion2Inpainting  # noqa: E402

from realfill.modules import RealFillModule, TinyStableDiffusionInpainting  # noqa: E402


class OperatorCount(TorchDispatchMode):
    """Counts dispatched aten operators under the label of the component running them."""

    def __init__(self) -> None:
        super().__init__()
        self.labels = ["other"]
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[self.labels[-1]] += 1
        return func(*args, **(kwargs or {}))

    def label(self, base_model: nn.Module, phase: str) -> list:
        """Label operators by the base model's top-level component (unet, text_encoder, vae)."""

        def enter(name: str):
            return lambda *_: self.labels.append(f"{phase} {name}")

        def leave(*_) -> None:
            self.labels.pop()

        handles = []
        for name, component in base_model.named_children():
            for module in component.modules():
                handles.append(module.register_forward_pre_hook(enter(name)))
                handles.append(module.register_forward_hook(leave))
        return handles


def count_step(module: RealFillModule, batch: dict) -> collections.Counter[str]:
    """Operators of one training step: forward by component, then the backward pass."""
    counter = OperatorCount()
    handles = counter.label(module.base_model, "forward")
    with counter:
        loss = module.masked_loss(batch)
        counter.labels.append("backward")
        loss.backward()
    for handle in handles:
        handle.remove()
    return counter.counts


def main(argv: list[str] | None = None) -> collections.Counter[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["full", "tiny"], default="full")
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    base = (
        RandomStableDiffusion2Inpainting()
        if args.scale == "full"
        else (TinyStableDiffusionInpainting())
    )
    module = RealFillModule(base)
    size = (1, 1, args.resolution, args.resolution)
    batch = {
        "pixels": torch.rand(1, 3, *size[2:]) * 2 - 1,
        "training_mask": (torch.rand(size) > 0.5).float(),
        "known_mask": torch.ones(size),
    }
    count_step(module, batch)  # first call: lazy initialisation issues operators of its own
    counts = count_step(module, batch)
    total = sum(counts.values())
    print(f"| operators in one training step ({args.scale} scale) | count | share |")
    print("|---|---|---|")
    for label, count in counts.most_common():
        print(f"| {label} | {count} | {100 * count / total:.0f}% |")
    print(f"| total | {total} | 100% |")
    return counts


if __name__ == "__main__":
    main()
