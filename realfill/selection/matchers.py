"""Keypoint matchers for correspondence-based ranking, chosen by `class_path` in the config.

A matcher returns *verified* correspondences between two images: tentative matches from its
features, kept only if they agree with one epipolar geometry (a fundamental matrix fitted with
RANSAC), which holds across the viewpoint changes between a target and its references.
"""

import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Literal

import kornia.feature as KF
import numpy as np
import torch
from kornia.geometry.ransac import RANSAC
from PIL import Image

from realfill.errors import ModelLoadError

Correspondences = tuple[torch.Tensor, torch.Tensor]
Described = tuple[Any, float]
"""An image's features at the matching size, and the scale from its own pixels to that size."""


def grayscale_tensor(image: Image.Image, max_side: int) -> tuple[torch.Tensor, float]:
    """A [1, 1, H, W] float image in [0, 1], shrunk so its longer side is at most `max_side`,
    and the scale applied (to map keypoints back to the image's own pixels)."""
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(gray)[None, None], scale


class Matcher(ABC):
    """Finds verified keypoint correspondences between two images."""

    min_side = 32
    """The shortest image side, at the matching size, the features can be computed on (SIFT's
    scale pyramid needs 32 px); a smaller image (a thumbnail, a long thin strip) has none."""

    def __init__(
        self,
        max_side: int = 640,
        ransac_threshold: float = 1.0,
        ransac_iterations: int = 20480,
        min_matches: int = 8,
        seed: int = 0,
        device: str = "auto",
        cached_images: int = 32,
    ) -> None:
        """
        Args:
            max_side: Images are matched with their longer side shrunk to at most this.
            ransac_threshold: Epipolar inlier threshold, in pixels at the matching size.
            ransac_iterations: RANSAC hypotheses (8-point samples) drawn at most for the
                fundamental matrix, fewer once 99% confidence is reached; the default is
                kornia's own budget.
            min_matches: Fewer tentative matches than this verify nothing (8-point model).
            seed: RANSAC seed, so scores are reproducible.
            device: Where features are computed and verified: "auto" (the current GPU if
                there is one, else the CPU), "cpu" or "cuda".
            cached_images: Images whose features are kept (least recently used dropped): the
                references and the candidate being scored. A scene with more references than
                this minus one has each reference described again for every candidate.
        """
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(auto if device == "auto" else device)
        self.max_side = max_side
        self.min_matches = max(8, min_matches)
        self.cache: OrderedDict[bytes, Described] = OrderedDict()
        self.cache_size = max(2, cached_images)
        self.ransac = RANSAC(
            "fundamental_8pt", inl_th=ransac_threshold, max_samples=ransac_iterations, seed=seed
        )

    def describe(self, gray: torch.Tensor) -> Any:
        """Per-image features of a [1, 1, H, W] grayscale image (the image itself for matchers
        that match jointly)."""
        return gray

    @abstractmethod
    def tentative_matches(self, features_a: Any, features_b: Any) -> Correspondences:
        """Matched keypoints (x, y) of two images' features, before verification."""

    @torch.no_grad()
    def features(self, image: Image.Image) -> Described:
        """Features of an image at the matching size, and the scale applied (uncached: for an
        image seen once, such as a candidate); None for an image below `min_side` there."""
        gray, scale = grayscale_tensor(image, self.max_side)
        if min(gray.shape[-2:]) < self.min_side:
            return None, scale
        with self.full_precision():
            return self.describe(gray.to(self.device)), scale

    def full_precision(self) -> torch.autocast:
        """A context in which matching runs in fp32 whatever the caller's: under a bf16-mixed
        run's autocast (Lightning's predict step, where `realfill.sample` scores) SIFT found
        63 verified matches on the example's true fill instead of 88."""
        return torch.autocast(self.device.type, enabled=False)

    def described(self, image: Image.Image) -> Described:
        """`features`, cached by content: an image met again (a reference, for every candidate
        or sampling round) is described once."""
        key = hashlib.blake2b(image.tobytes() + repr(image.size).encode()).digest()
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        self.cache[key] = self.features(image)
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return self.cache[key]

    def matches(self, features_a: Any, features_b: Any) -> Correspondences:
        """`tentative_matches`, or none when an image had no features (too small)."""
        if features_a is None or features_b is None:
            empty = torch.zeros(0, 2)
            return empty, empty
        return self.tentative_matches(features_a, features_b)

    @torch.no_grad()
    def verified(self, described_a: Described, described_b: Described) -> Correspondences:
        """Verified correspondences between two described images, as (N, 2) keypoints in
        each image's own pixel coordinates."""
        (features_a, scale_a), (features_b, scale_b) = described_a, described_b
        with self.full_precision():
            points_a, points_b = self.matches(features_a, features_b)
            if len(points_a) < self.min_matches:
                empty = torch.zeros(0, 2)
                return empty, empty
            _, inliers = self.ransac(points_a.double(), points_b.double())
        inliers = inliers.bool()
        points_a, points_b = points_a[inliers].float().cpu(), points_b[inliers].float().cpu()
        return points_a / scale_a, points_b / scale_b

    def match(self, image_a: Image.Image, image_b: Image.Image) -> Correspondences:
        """Verified correspondences between two images (each described once, by content)."""
        return self.verified(self.described(image_a), self.described(image_b))


class SIFTMatcher(Matcher):
    """Handcrafted features that need no weights: kornia's SIFT with RootSIFT descriptors,
    mutual nearest neighbours passing the ratio test both ways. The offline default."""

    def __init__(
        self,
        num_features: int = 2000,
        ratio: float = 0.9,
        descriptor_backend: Literal["pyramid", "patch"] = "pyramid",
        **kwargs,
    ) -> None:
        """
        Args:
            num_features: Keypoints detected per image.
            ratio: Lowe's ratio test threshold (nearest / second-nearest descriptor distance).
            descriptor_backend: kornia's SIFT pipeline: "pyramid" describes keypoints from the
                detector's own Gaussian pyramid (the strongest DoG extrema, no edge rejection),
                about 4x faster on a CPU than "patch", which resamples a patch per keypoint.
            **kwargs: `Matcher` settings (max_side, ransac_threshold, ...).
        """
        super().__init__(**kwargs)
        self.sift = KF.SIFTFeature(num_features=num_features, descriptor_backend=descriptor_backend)
        self.sift.eval().to(self.device)
        self.ratio = ratio

    def describe(self, gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lafs, _, descriptors = self.sift(gray)
        return lafs, descriptors

    def tentative_matches(self, features_a: Any, features_b: Any) -> Correspondences:
        (lafs_a, descriptors_a), (lafs_b, descriptors_b) = features_a, features_b
        if descriptors_a.shape[1] < 2 or descriptors_b.shape[1] < 2:
            empty = torch.zeros(0, 2)
            return empty, empty
        _, indices = KF.match_smnn(descriptors_a[0], descriptors_b[0], th=self.ratio)
        points_a = KF.get_laf_center(lafs_a)[0, indices[:, 0]]
        points_b = KF.get_laf_center(lafs_b)[0, indices[:, 1]]
        return points_a, points_b


class LoFTRMatcher(Matcher):
    """kornia's LoFTR, the paper's matcher. Its weights come from a download (or the torch hub
    cache), or from a local file given as `weights_path`."""

    def __init__(
        self,
        pretrained: str = "outdoor",
        weights_path: str | None = None,
        min_confidence: float = 0.5,
        **kwargs,
    ) -> None:
        """
        Args:
            pretrained: kornia's LoFTR weights name ("outdoor", "indoor", "indoor_new").
            weights_path: A local LoFTR checkpoint (a dict with "state_dict"); no download.
            min_confidence: Matches below this confidence are dropped.
            **kwargs: `Matcher` settings (max_side, ransac_threshold, ...).
        """
        super().__init__(**kwargs)
        try:
            if weights_path is None:
                self.loftr = KF.LoFTR(pretrained=pretrained)
            else:
                self.loftr = KF.LoFTR(pretrained=None)
                state = torch.load(weights_path, map_location="cpu", weights_only=True)
                self.loftr.load_state_dict(state.get("state_dict", state))
        except Exception as error:  # a failed download surfaces as many exception types
            source = weights_path or f"kornia's {pretrained!r} download"
            raise ModelLoadError(
                f"cannot load LoFTR weights from {source} ({type(error).__name__}); give a local "
                "file as weights_path, or use realfill.callbacks.SIFTMatcher, which needs none"
            ) from error
        self.loftr.eval().to(self.device)
        self.min_confidence = min_confidence

    def tentative_matches(self, features_a: Any, features_b: Any) -> Correspondences:
        output = self.loftr({"image0": features_a, "image1": features_b})
        keep = output["confidence"] >= self.min_confidence
        return output["keypoints0"][keep], output["keypoints1"][keep]
