"""Correspondence-based ranking: keep the candidates whose filled region agrees with the
references (RealFill's seed selection)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from realfill.selection.compositing import mask_to_tensor
from realfill.selection.matchers import Matcher
from realfill.stopping import check_stop


def scoring_region(mask: Image.Image, margin: int) -> torch.Tensor:
    """The filled region grown by `margin` pixels: [H, W] bool. The paper counts the filled
    region alone (margin 0); a margin also counts matches on the known rim, which every
    candidate shares (on `examples/motorcycle` 16 pixels lift a flat grey fill from 0 to 14
    matches, the true fill from 59 to 88)."""
    region = mask_to_tensor(mask).float()[None, None]
    if margin > 0:
        region = F.max_pool2d(region, 2 * margin + 1, stride=1, padding=margin)
    return region[0, 0].bool()


def count_in_region(points: torch.Tensor, region: torch.Tensor) -> int:
    """How many (x, y) keypoints fall inside a [H, W] boolean region."""
    if len(points) == 0:
        return 0
    height, width = region.shape
    x = points[:, 0].round().long().clamp(0, width - 1)
    y = points[:, 1].round().long().clamp(0, height - 1)
    return int(region[y, x].sum())


def correspondence_scores(
    candidates: Sequence[Image.Image],
    mask: Image.Image,
    references: Sequence[Image.Image],
    matcher: Matcher,
    margin: int = 0,
    progress: bool = False,
) -> list[int]:
    """Per candidate, the verified matches between its filled region (plus a margin) and the
    references, summed over the references. The region and the references' features are
    computed once for all candidates; each candidate is described once."""
    region = scoring_region(mask, margin)
    described_references = [matcher.described(reference) for reference in references]
    scores = []
    for candidate in tqdm(candidates, desc="Ranking", unit="candidate", disable=not progress):
        check_stop()
        described = matcher.features(candidate)
        scores.append(
            sum(
                count_in_region(matcher.verified(described, reference)[0], region)
                for reference in described_references
            )
        )
    return scores


def rank(scores: Sequence[float]) -> list[int]:
    """Candidate indices, best first; ties keep the sampling order (lower seed first)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))
