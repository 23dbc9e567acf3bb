"""Baselines that write completions in the layout `realfill.sample` writes, so the same
evaluator scores them: the prompt-only base model, a geometric reference baseline
(TransFill-like) and classical single-image inpainting (the floor)."""

from pathlib import Path

from PIL import Image

from realfill.baselines.classical import OpenCVInpaint
from realfill.baselines.geometric import GeometricBaseline
from realfill.data import Scene
from realfill.selection.matchers import Matcher, SIFTMatcher
from realfill.selection.writing import Selection, score_candidates, write_selection

IMAGE_BASELINES = {"geometric": GeometricBaseline, "opencv": OpenCVInpaint}
"""Deterministic baselines that complete a scene in one call, by method name."""
MATCH_MARGIN = 16
"""Pixels around the hole whose matches count in a baseline completion's score (as in
CompleteTarget's default)."""


def write_completion(
    out: Path, completion: Image.Image, scene: Scene, matcher: Matcher | None = None
) -> Selection:
    """Write one deterministic completion as candidate seed 0, selected, with its
    correspondence score: `candidates/`, `ranked/`, `scores.json`, `contact_sheet.png`."""
    scores = score_candidates([completion], scene, matcher or SIFTMatcher(), MATCH_MARGIN, False)
    return write_selection(out, [completion], [0], scores, keep=1, scene=scene)


__all__ = ["IMAGE_BASELINES", "GeometricBaseline", "OpenCVInpaint", "write_completion"]
