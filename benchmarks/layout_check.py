"""Which compiled graphs inductor lays out channels-last on a GPU, decided on the CPU.

    python benchmarks/layout_check.py              # full-size SD2 inpainting
    python benchmarks/layout_check.py --scale tiny

cuDNN runs convolutions in NHWC; a graph inductor leaves in NCHW pays cuDNN's layout
conversions around every convolution. Inductor decides per graph (`decide_layout_opt`), from
the graph alone: training graphs are skipped when a convolution has fewer output than input
channels (the UNet's up blocks do), inference graphs weigh FLOPs. This traces the adapted
UNet's training graphs (forward and backward, LoRA trainable) and its sampling graph, and the
VAE encoder's, with oneDNN off so the CPU takes the GPU's decision. The decision does not
depend on the image size, so it runs at a small one.
"""

import argparse
import sys
import warnings
from pathlib import Path

import torch
from torch._dynamo.backends.common import aot_autograd
from torch._inductor.graph import GraphLowering

sys.path.insert(0, str(Path(__file__).resolve().parent))

from architecture import RandomStableDiffusion2Inpainting  # noqa: E402

from realfill.modules import RealFillModule, TinyStableDiffusionInpainting  # noqa: E402


def decisions_of(fn, *args, inference: bool) -> dict[str, bool]:
    """Inductor's channels-last decision for each graph `fn(*args)` compiles to: "forward"
    and "backward", or "inference"."""
    decided: dict[str, bool] = {}

    def capture(kind: str):
        def compiler(graph, example_inputs):
            with torch.backends.mkldnn.flags(enabled=False):
                decided[kind] = GraphLowering.decide_layout_opt(graph, is_inference=inference)
            return graph.forward

        return compiler

    torch._dynamo.reset()
    backend = aot_autograd(
        fw_compiler=capture("inference" if inference else "forward"),
        bw_compiler=capture("backward"),
    )
    with torch.set_grad_enabled(not inference):
        output = torch.compile(fn, backend=backend)(*args)
        if not inference:
            output.float().square().mean().backward()
    return decided


def main(argv: list[str] | None = None) -> dict[str, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["full", "tiny"], default="full")
    parser.add_argument("--latent_size", type=int, default=16, help="latent side traced at")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
    base = (
        RandomStableDiffusion2Inpainting()
        if args.scale == "full"
        else TinyStableDiffusionInpainting()
    )
    RealFillModule(base)  # adds the LoRA adapters, as fit trains them
    unet, vae = base.denoiser, base.vae
    side = args.latent_size  # a batch of two: training encodes image and masked image together
    latents = torch.randn(2, unet.config.in_channels, side, side)
    text = torch.randn(2, 77, unet.config.cross_attention_dim)
    timestep = torch.tensor([500, 500])

    def denoise(latents: torch.Tensor) -> torch.Tensor:
        return unet(latents, timestep, text).sample

    pixels = torch.randn(2, 3, side * base.vae_scale_factor, side * base.vae_scale_factor)
    decided = {
        f"unet {kind}": channels_last
        for kind, channels_last in decisions_of(denoise, latents, inference=False).items()
    }
    decided["unet inference"] = decisions_of(denoise, latents, inference=True)["inference"]
    decided["vae encoder inference"] = decisions_of(vae.encoder, pixels, inference=True)[
        "inference"
    ]
    for graph, channels_last in decided.items():
        print(f"{graph}: {'channels-last' if channels_last else 'NCHW'}")
    return decided


if __name__ == "__main__":
    main()
