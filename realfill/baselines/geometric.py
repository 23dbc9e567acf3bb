"""A geometric reference baseline in the spirit of TransFill (Zhou et al., CVPR 2021).

Match the target's known pixels with each reference (the offline SIFT matcher), fit
homographies with RANSAC (one from every match, one from the matches around the hole), warp
each reference onto the target, correct its colours on a ring of known pixels around the hole,
and keep the warp that agrees best with that ring. The hole is filled from the kept warp;
what no reference covers is inpainted (OpenCV), and the result is composited with the
feathered mask like any completion.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from realfill.baselines.classical import inpaint
from realfill.data import Scene
from realfill.selection.compositing import check_feathering, composite
from realfill.selection.matchers import Matcher, SIFTMatcher

MIN_HOMOGRAPHY_MATCHES = 4
"""A homography needs at least four point pairs."""
ECC_BLUR = 5
"""Gaussian blur size OpenCV's ECC alignment applies before estimating (smooths texture)."""
MIN_STD = 1e-3
"""A colour channel flatter than this (0..255 scale) keeps gain 1 in the colour correction."""


@dataclass
class Warp:
    """One reference warped onto the target's frame, colour-corrected, with its ring error."""

    image: np.ndarray
    valid: np.ndarray
    error: float


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A bool mask grown by `radius` pixels (square structuring element)."""
    if radius <= 0:
        return mask.copy()
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def keep_known(points: torch.Tensor, hole: np.ndarray) -> torch.Tensor:
    """Which (x, y) keypoints of the target lie on known pixels (outside `hole`): [N] bool."""
    if len(points) == 0:
        return torch.zeros(0, dtype=torch.bool)
    height, width = hole.shape
    x = points[:, 0].round().long().clamp(0, width - 1).numpy()
    y = points[:, 1].round().long().clamp(0, height - 1).numpy()
    return torch.from_numpy(~hole[y, x])


def colour_transfer(source: np.ndarray, target: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """`source` with each channel's mean and spread over `ring` matched to `target`'s."""
    out = source.astype(np.float32)
    for channel in range(out.shape[2]):
        src, tgt = out[..., channel][ring], target[..., channel][ring].astype(np.float32)
        gain = tgt.std() / src.std() if src.std() > MIN_STD else 1.0
        out[..., channel] = (out[..., channel] - src.mean()) * gain + tgt.mean()
    return np.clip(out, 0, 255)


def homography(source: np.ndarray, destination: np.ndarray, threshold: float) -> np.ndarray | None:
    """RANSAC homography mapping `source` (N, 2) points onto `destination`; None if it fails."""
    if len(source) < MIN_HOMOGRAPHY_MATCHES:
        return None
    matrix, _ = cv2.findHomography(source, destination, cv2.RANSAC, threshold)
    return matrix


class GeometricBaseline:
    """Warps the best-agreeing reference into the hole through a RANSAC homography."""

    name = "geometric"

    def __init__(
        self,
        matcher: Matcher | None = None,
        ransac_threshold: float = 3.0,
        context: int = 48,
        ring: int = 12,
        align_ring: int = 48,
        ecc_iterations: int = 200,
        ecc_epsilon: float = 1e-6,
        hole_margin: int = 3,
        inpaint_radius: int = 5,
        feather_dilation: int = 1,
        feather_blur: int = 1,
    ) -> None:
        """
        Args:
            matcher: Keypoint matcher; default realfill.callbacks.SIFTMatcher (no weights).
            ransac_threshold: Homography RANSAC inlier threshold, in target pixels.
            context: Matches within this many pixels of the hole also get their own homography
                (the surface around the hole, rather than the dominant plane of the image).
            ring: Width in pixels of the known ring around the hole used for colour correction
                and to choose among the warps.
            align_ring: Width in pixels of the known ring each homography is refined on
                (ECC image alignment, OpenCV), so the warp fits the hole's surroundings.
            ecc_iterations: Maximum ECC iterations per refinement.
            ecc_epsilon: ECC stops when the correlation improves by less than this.
            hole_margin: Target keypoints this close to the hole are dropped (its painted edge
                makes corners that are not in the scene).
            inpaint_radius: OpenCV inpainting radius for hole pixels no warp covers.
            feather_dilation: Pixels the mask is dilated by before compositing.
            feather_blur: Box-blur radius of the compositing mask's edge; at most
                feather_dilation, so that the blur never reaches into the hole.
        """
        self.matcher = matcher or SIFTMatcher()
        self.ransac_threshold = ransac_threshold
        self.context = context
        self.ring = ring
        self.align_ring = align_ring
        self.ecc_criteria = (
            cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
            ecc_iterations,
            ecc_epsilon,
        )
        self.hole_margin = hole_margin
        self.inpaint_radius = inpaint_radius
        check_feathering("GeometricBaseline", feather_dilation, feather_blur)
        self.feather = (feather_dilation, feather_blur)

    @torch.no_grad()
    def matches(self, scene: Scene, reference: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """Tentative matches (target points, reference points) on the target's known pixels."""
        target_features, target_scale = self.matcher.described(scene.target)
        reference_features, reference_scale = self.matcher.described(reference)
        points_t, points_r = self.matcher.matches(target_features, reference_features)
        points_t, points_r = points_t.cpu() / target_scale, points_r.cpu() / reference_scale
        hole = dilate(np.asarray(scene.mask) > 0, self.hole_margin)
        known = keep_known(points_t, hole)
        return points_t[known].double().detach().numpy(), points_r[known].double().detach().numpy()

    def homographies(self, scene: Scene, reference: Image.Image) -> list[np.ndarray]:
        """Reference-to-target homographies: from all matches and from those near the hole,
        each also refined on the ring around the hole."""
        points_t, points_r = self.matches(scene, reference)
        near = dilate(np.asarray(scene.mask) > 0, self.context)
        height, width = near.shape
        x = np.clip(np.rint(points_t[:, 0]).astype(int), 0, width - 1)
        y = np.clip(np.rint(points_t[:, 1]).astype(int), 0, height - 1)
        local = near[y, x]
        subsets = [(points_r, points_t), (points_r[local], points_t[local])]
        found = [homography(src, dst, self.ransac_threshold) for src, dst in subsets]
        found = [matrix for matrix in found if matrix is not None]
        return found + [self.refine(scene, reference, matrix) for matrix in found]

    def refine(self, scene: Scene, reference: Image.Image, matrix: np.ndarray) -> np.ndarray:
        """`matrix` refined by ECC alignment of the reference to the target's known ring
        around the hole; `matrix` itself when ECC does not converge."""
        hole = np.asarray(scene.mask) > 0
        ring = (dilate(hole, self.align_ring) & ~hole).astype(np.uint8)
        target = cv2.cvtColor(np.asarray(scene.target.convert("RGB")), cv2.COLOR_RGB2GRAY)
        source = cv2.cvtColor(np.asarray(reference.convert("RGB")), cv2.COLOR_RGB2GRAY)
        initial = np.linalg.inv(matrix).astype(np.float32)  # ECC maps target to reference
        try:
            _, refined = cv2.findTransformECC(
                target.astype(np.float32),
                source.astype(np.float32),
                initial,
                cv2.MOTION_HOMOGRAPHY,
                self.ecc_criteria,
                ring,
                ECC_BLUR,
            )
        except cv2.error:
            return matrix
        return np.linalg.inv(refined.astype(np.float64))

    def warp(self, scene: Scene, reference: Image.Image, matrix: np.ndarray) -> Warp | None:
        """The reference warped by `matrix`, colour-corrected on the ring; None if the warp
        covers none of the ring."""
        target = np.asarray(scene.target.convert("RGB"))
        hole = np.asarray(scene.mask) > 0
        size = (target.shape[1], target.shape[0])
        source = np.asarray(reference.convert("RGB"))
        warped = cv2.warpPerspective(source, matrix, size, flags=cv2.INTER_LINEAR)
        ones = np.full(source.shape[:2], 255, np.uint8)
        inside = cv2.warpPerspective(ones, matrix, size, flags=cv2.INTER_NEAREST) > 0
        valid = ~dilate(~inside, 1)  # the outermost pixels blend with the black border
        ring = dilate(hole, self.ring) & ~hole & valid
        if not ring.any():
            return None
        corrected = colour_transfer(warped, target, ring)
        error = float(np.abs(corrected[ring] - target[ring].astype(np.float32)).mean())
        return Warp(corrected, valid, error)

    def best_warp(self, scene: Scene) -> Warp | None:
        """The warp of any reference, by any of its homographies, with the smallest ring error."""
        warps = [
            self.warp(scene, reference, matrix)
            for reference in scene.references
            for matrix in self.homographies(scene, reference)
        ]
        warps = [w for w in warps if w is not None]
        return min(warps, key=lambda w: w.error) if warps else None

    def complete(self, scene: Scene) -> Image.Image:
        """The target with its hole filled from the best warped reference."""
        target = np.asarray(scene.target.convert("RGB"))
        hole = np.asarray(scene.mask) > 0
        filled = target.astype(np.float32)
        best = self.best_warp(scene)
        covered = hole & best.valid if best is not None else np.zeros_like(hole)
        if best is not None:
            filled[covered] = best.image[covered]
        filled = np.clip(np.rint(filled), 0, 255).astype(np.uint8)
        filled = inpaint(filled, hole & ~covered, self.inpaint_radius, "telea")
        return composite(Image.fromarray(filled), scene.target, scene.mask, *self.feather)
