"""The floor: classical single-image inpainting (OpenCV), which never looks at the references."""

import cv2
import numpy as np
from PIL import Image

from realfill.data import Scene

INPAINT_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
"""OpenCV's inpainting algorithms: Telea's fast marching, or Navier-Stokes."""


def inpaint(image: np.ndarray, hole: np.ndarray, radius: int, method: str) -> np.ndarray:
    """`image` (H, W, 3 uint8) with the pixels where `hole` (H, W bool) is True inpainted."""
    if method not in INPAINT_METHODS:
        raise ValueError(f"unknown inpainting method {method!r}; one of {sorted(INPAINT_METHODS)}")
    if not hole.any():
        return image.copy()
    return cv2.inpaint(image, hole.astype(np.uint8) * 255, radius, INPAINT_METHODS[method])


class OpenCVInpaint:
    """Fills the hole from the target's own surroundings only (cv2.inpaint)."""

    name = "opencv"

    def __init__(self, radius: int = 5, method: str = "telea") -> None:
        """
        Args:
            radius: Neighbourhood radius, in pixels, each inpainted pixel is drawn from.
            method: "telea" (fast marching) or "ns" (Navier-Stokes).
        """
        self.radius = radius
        self.method = method

    def complete(self, scene: Scene) -> Image.Image:
        """The target with its masked region inpainted."""
        target = np.asarray(scene.target.convert("RGB"))
        hole = np.asarray(scene.mask) > 0
        return Image.fromarray(inpaint(target, hole, self.radius, self.method))
