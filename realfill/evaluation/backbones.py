"""The six metrics of the paper, with their networks loaded from a hub id or a local folder.

A metric whose network cannot be loaded here (no network, no such folder, a package that is
not installed) is *unavailable*: it is reported as such, with the reason, never as a number,
and the other metrics still run.
"""

import contextlib
import hashlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from realfill.errors import ConfigError
from realfill.evaluation.metrics import (
    cosine_similarity,
    image_to_tensor,
    mask_to_bool,
    masked_perceptual,
    masked_perceptual_map,
    masked_psnr,
    masked_ssim,
)

METRICS = ("psnr", "ssim", "lpips", "dreamsim", "dino", "clip")
"""Metric names, in the paper's column order."""
LABELS = {
    "psnr": "PSNR ↑",
    "ssim": "SSIM ↑",
    "lpips": "LPIPS ↓",
    "dreamsim": "DreamSim ↓",
    "dino": "DINO ↑",
    "clip": "CLIP ↑",
}
"""Column titles, with the direction in which a value is better."""
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "dreamsim": False}
HIGHER_IS_BETTER |= {"dino": True, "clip": True}
"""Whether a larger value of each metric means a better completion."""
PIP_NAMES = {"torchvision": "torchvision", "dreamsim": "dreamsim"}
"""The pip package that provides each module a metric imports."""

Scorer = Callable[[Image.Image, Image.Image, Image.Image], float]
"""(completion, ground truth, mask) -> metric value."""
LpipsRegion = Literal["mask", "box"]
"""Where LPIPS compares (see `MetricSettings.lpips_region`)."""
LPIPS_REGIONS: tuple[LpipsRegion, ...] = ("mask", "box")
"""Every `LpipsRegion`, the default (the paper's) first."""
LPIPS_PROTOCOLS = {
    "mask": "The paper's protocol (RealFill, Table 1): PSNR, SSIM and LPIPS inside the mask "
    "(LPIPS: its per-pixel map averaged over the masked pixels); DreamSim, DINO and CLIP on "
    "the whole image.",
    "box": "PSNR and SSIM inside the mask; LPIPS on the mask's bounding box, the outside "
    "replaced by the ground truth (lpips_region: box; not the paper's protocol, its LPIPS is "
    "not comparable); DreamSim, DINO and CLIP on the whole image.",
}
"""The protocol each `LpipsRegion` gives, as the report states it."""


@dataclass
class MetricSettings:
    """Where each metric's network comes from (a hub id or a local folder)."""

    lpips_net: str = "alex"
    """torchmetrics LPIPS backbone: "alex", "vgg" or "squeeze" (torchvision ImageNet weights)."""
    lpips_region: LpipsRegion = "mask"
    """Where LPIPS compares. "mask": inside the mask, the paper's protocol (LPIPS's per-pixel
    map averaged over the missing pixels). "box": the mask's bounding box, the outside replaced
    by the ground truth (nearly the whole image for an outpainting scene, where the known
    pixels dilute it: not comparable with the paper's numbers)."""
    dreamsim_type: str = "ensemble"
    """DreamSim model type ("ensemble", "dino_vitb16", "open_clip_vitb32", ...)."""
    dreamsim_cache_dir: str | None = None
    """Folder holding (or receiving) the DreamSim weights; default dreamsim/ in torch.hub's folder
    ($TORCH_HOME/hub, ~/.cache/torch/hub)."""
    dino_model: str = "facebook/dino-vits16"
    """DINO ViT-S/16 or B/16: hub id or local folder with the model and image processor."""
    clip_model: str = "openai/clip-vit-base-patch16"
    """CLIP: hub id or local folder with the vision model and image processor."""
    device: str = "cpu"
    """Device the networks run on."""

    def __post_init__(self) -> None:
        if self.lpips_region not in LPIPS_REGIONS:
            raise ConfigError(
                f"lpips_region must be one of {list(LPIPS_REGIONS)}, got {self.lpips_region!r}"
            )

    @classmethod
    def from_mapping(cls, values: dict) -> "MetricSettings":
        """Settings from a config mapping; an unknown key is a ValueError naming it."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown metric setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def protocol(self) -> str:
        """How each metric compares a completion with the ground truth, in one sentence: the
        report's header."""
        return LPIPS_PROTOCOLS[self.lpips_region]


def one_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message, whole."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (HF_HUB_OFFLINE), now or at its import."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return flag or bool(constants.HF_HUB_OFFLINE)


def missing_module(error: BaseException) -> str | None:
    """The module whose absence an import error (or torchmetrics' wording of one) reports."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        return error.name.split(".")[0]
    return next((name for name in PIP_NAMES if name in str(error)), None)


def unavailable_reason(error: BaseException, source: str | None = None) -> str:
    """Why a metric cannot be computed here and how to get it, in one true line: the package
    that is not installed, or the weights that are neither a local folder nor in the hub's
    cache while the hub is offline; else the error itself, whole."""
    module = missing_module(error)
    if module is not None:
        package = PIP_NAMES.get(module, module)
        return f"the Python package {module} is not installed (pip install {package})"
    if source is not None and not Path(source).exists():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(source, "config.json")
        except ValueError:  # not a valid hub id either (e.g. a path that does not exist)
            cached = None
        if not isinstance(cached, str) and hub_offline():
            return (
                f"{source} is not a local folder nor in the Hugging Face cache, and the hub is "
                f"offline (HF_HUB_OFFLINE=1): download it where there is network (hf download "
                f"{source}) or give a local folder"
            )
    cause = error.__cause__ or error
    return f"cannot load {source}: {one_line(cause)}" if source else one_line(error)


class MetricUnavailable(OSError):
    """A metric whose network cannot be loaded here; the message says why and what to do."""


class SourceUnavailable(MetricUnavailable):
    """A metric network that cannot be loaded from its source (a hub id or a local folder)."""

    def __init__(self, source: str, error: BaseException) -> None:
        super().__init__(unavailable_reason(error, source))
        self.source = source


def weights_unavailable(
    missing: str, folder: Path, error: BaseException, prepare: str
) -> MetricUnavailable:
    """Weights that torch.hub or a package would download into `folder` but cannot: what is
    `missing`, the error, and the Python line (`prepare`) that fills the folder elsewhere."""
    return MetricUnavailable(
        f"{missing} in {folder} and cannot be downloaded here ({one_line(error)}): run python "
        f'-c "{prepare}" where there is network and copy that folder here'
    )


def low_level(function: Callable[..., float]) -> Scorer:
    """A masked tensor metric as a scorer on images."""

    def score(completion: Image.Image, truth: Image.Image, mask: Image.Image) -> float:
        return function(image_to_tensor(completion), image_to_tensor(truth), mask_to_bool(mask))

    return score


def load_lpips(net: str, device: str, region: LpipsRegion = "mask") -> Scorer:
    """LPIPS (torchmetrics) inside the mask, or on its bounding box (`region`); needs
    torchvision and its ImageNet weights, which torch.hub downloads on first use."""
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    try:
        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)
    except OSError as error:  # the download failed: offline, or the cache cannot be written
        raise weights_unavailable(
            f"torchvision's ImageNet weights for the {net} backbone are not",
            Path(torch.hub.get_dir()) / "checkpoints",
            error,
            "from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity as L; "
            f"L(net_type='{net}')",
        ) from error
    metric = metric.to(device).eval()

    @torch.no_grad()
    def distance(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        metric.reset()
        return metric(first.to(device), second.to(device))

    @torch.no_grad()
    def distance_map(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        metric.net.spatial = True  # each layer's map upsampled to the image, not averaged
        try:
            return metric.net(first.to(device), second.to(device), normalize=True).cpu()
        finally:
            metric.net.spatial = False

    def score(completion: Image.Image, truth: Image.Image, mask: Image.Image) -> float:
        images = image_to_tensor(completion), image_to_tensor(truth), mask_to_bool(mask)
        if region == "mask":
            return masked_perceptual_map(*images, distance_map)
        return masked_perceptual(*images, distance)

    return score


class EmbeddingCosine:
    """Whole-image similarity: the cosine of two images' embeddings from a transformers model.
    The ground truth is embedded once for all the candidates scored against it in a row."""

    def __init__(self, embed: Callable[[Image.Image], torch.Tensor]) -> None:
        """
        Args:
            embed: Maps an RGB image to its embedding vector.
        """
        self.embed = embed
        self.truth_key: bytes | None = None
        self.truth_embedding: torch.Tensor | None = None

    def __call__(self, completion: Image.Image, truth: Image.Image, mask: Image.Image) -> float:
        return cosine_similarity(self.embed(completion), self.embedded_truth(truth))

    def embedded_truth(self, truth: Image.Image) -> torch.Tensor:
        """`truth`'s embedding, computed again only when another image comes (by content)."""
        key = hashlib.blake2b(truth.tobytes() + repr((truth.mode, truth.size)).encode()).digest()
        if key != self.truth_key:
            self.truth_key, self.truth_embedding = key, self.embed(truth)
        return self.truth_embedding


def load_dino(source: str, device: str) -> Scorer:
    """DINO: cosine of the CLS tokens of a ViT (e.g. facebook/dino-vits16) and its processor."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    processor = AutoImageProcessor.from_pretrained(source)
    # DINO's ViT checkpoints have no pooler (the CLS token is the embedding): not building one
    # spares transformers' report of its weights as missing
    vit = AutoConfig.from_pretrained(source).model_type == "vit"
    options = {"add_pooling_layer": False} if vit else {}
    model = AutoModel.from_pretrained(source, **options).to(device).eval()

    @torch.no_grad()
    def embed(image: Image.Image) -> torch.Tensor:
        pixels = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        return model(pixel_values=pixels.to(device)).last_hidden_state[:, 0]

    return EmbeddingCosine(embed)


def load_clip(source: str, device: str) -> Scorer:
    """CLIP: cosine of the projected image embeddings (CLIPVisionModelWithProjection)."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    processor = CLIPImageProcessor.from_pretrained(source)
    model = CLIPVisionModelWithProjection.from_pretrained(source).to(device).eval()

    @torch.no_grad()
    def embed(image: Image.Image) -> torch.Tensor:
        pixels = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        return model(pixel_values=pixels.to(device)).image_embeds

    return EmbeddingCosine(embed)


def dreamsim_cache(cache_dir: str | None) -> Path:
    """Where DreamSim's weights are kept: `cache_dir`, else `dreamsim/` in torch.hub's folder
    (the dreamsim package's own default, ./models, would fill whatever folder a user is in)."""
    return Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / "dreamsim"


def load_dreamsim(dreamsim_type: str, cache_dir: str | None, device: str) -> Scorer:
    """DreamSim distance from the dreamsim package, its weights in `dreamsim_cache(cache_dir)`
    (downloaded there on first use)."""
    from dreamsim import dreamsim

    folder = dreamsim_cache(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    hub_dir = torch.hub._hub_dir  # None: torch.hub follows $TORCH_HOME; no public getter
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # its prints ("Using cached DIR", "Unzipping...") and peft's warning on the second
            # adapter wrapper that dreamsim puts around its model by design
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            model, preprocess = dreamsim(
                pretrained=True, dreamsim_type=dreamsim_type, device=device, cache_dir=str(folder)
            )
    except OSError as error:  # a file missing from the folder, or a failed download
        raise weights_unavailable(
            f"DreamSim's {dreamsim_type} weights are not all",
            folder,
            error,
            f"from dreamsim import dreamsim; dreamsim(dreamsim_type='{dreamsim_type}', "
            f"device='cpu', cache_dir='{folder}')",
        ) from error
    finally:
        torch.hub._hub_dir = hub_dir  # dreamsim points torch.hub at its folder for good

    @torch.no_grad()
    def score(completion: Image.Image, truth: Image.Image, mask: Image.Image) -> float:
        first = preprocess(completion.convert("RGB")).to(device)
        second = preprocess(truth.convert("RGB")).to(device)
        return float(model(first, second).reshape(-1)[0])

    return score


def from_source(load: Callable[[str, str], Scorer], source: str, device: str) -> Scorer:
    """`load(source, device)`, failing with the reason, which names the source."""
    try:
        return load(source, device)
    except Exception as error:  # hub, file and weight errors
        raise SourceUnavailable(source, error) from error


def metric_loaders(settings: MetricSettings) -> dict[str, Callable[[], Scorer]]:
    """How to build each metric's scorer under `settings`, in the paper's column order."""
    return {
        "psnr": lambda: low_level(masked_psnr),
        "ssim": lambda: low_level(masked_ssim),
        "lpips": lambda: load_lpips(settings.lpips_net, settings.device, settings.lpips_region),
        "dreamsim": lambda: load_dreamsim(
            settings.dreamsim_type, settings.dreamsim_cache_dir, settings.device
        ),
        "dino": lambda: from_source(load_dino, settings.dino_model, settings.device),
        "clip": lambda: from_source(load_clip, settings.clip_model, settings.device),
    }


class MetricSuite:
    """Every metric that can be loaded here; the others are listed with the reason."""

    def __init__(
        self,
        settings: MetricSettings | None = None,
        loaders: dict[str, Callable[[], Scorer]] | None = None,
    ) -> None:
        """
        Args:
            settings: Where the networks come from; default `MetricSettings()`.
            loaders: Scorer builders by metric name; default `metric_loaders(settings)`.
        """
        self.settings = settings or MetricSettings()
        self.scorers: dict[str, Scorer] = {}
        self.unavailable: dict[str, str] = {}
        for name, load in (loaders or metric_loaders(self.settings)).items():
            try:
                self.scorers[name] = load()
            except MetricUnavailable as error:
                self.unavailable[name] = str(error)
            except Exception as error:  # hub, file, import and weight errors all mean the same
                self.unavailable[name] = unavailable_reason(error)

    @property
    def names(self) -> list[str]:
        """Every metric, available or not, in column order."""
        return [*self.scorers, *self.unavailable]

    def score(
        self, completion: Image.Image, truth: Image.Image, mask: Image.Image
    ) -> dict[str, float | None]:
        """Each metric's value for one completion; None for an unavailable metric."""
        if completion.size != truth.size:
            raise ValueError(f"completion is {completion.size}, ground truth {truth.size}")
        values: dict[str, float | None] = dict.fromkeys(self.unavailable)
        for name, scorer in self.scorers.items():
            values[name] = scorer(completion, truth, mask)
        return values
