"""Published RealBench numbers, to read a report against (quoted in
../shared/realfill-method.md): the paper's Table 1 (33 scenes) and the public reproduction's
(12 of the 33 scenes, PSNR, SSIM and LPIPS inside the mask, 16 samples per scene). Both follow
the paper's protocol (`MetricSettings.lpips_region: mask`); only a RealBench report made with
it is comparable."""

from realfill.evaluation.backbones import METRICS

PUBLISHED_SOURCES = (
    "Paper: RealFill, Table 1 (RealBench, 33 scenes); "
    "public reproduction: 12 of the 33 scenes, fp16 on a T4, 16 samples per scene"
)
"""Where the rows of `PUBLISHED` come from."""


def _row(*values: float) -> dict[str, float | None]:
    return dict(zip(METRICS, values, strict=True))


PUBLISHED = {
    "paper: SD inpainting, hand-written prompt": _row(10.63, 0.282, 0.605, 0.213, 0.831, 0.874),
    "paper: Photoshop Generative Fill, prompt": _row(10.92, 0.311, 0.598, 0.212, 0.851, 0.898),
    "paper: Paint-by-Example (one reference)": _row(10.13, 0.244, 0.642, 0.237, 0.797, 0.859),
    "paper: TransFill (geometric, one reference)": _row(13.28, 0.404, 0.542, 0.192, 0.860, 0.866),
    "paper: RealFill": _row(14.78, 0.424, 0.431, 0.077, 0.948, 0.962),
    "public reproduction: RealFill": _row(13.78, 0.440, 0.248, 0.062, 0.960, 0.965),
}
"""Each published method's RealBench means, by metric (`METRICS`)."""
