"""Selection, a library with no Lightning in it: sample candidates and composite them onto the
target (feathered), score them by keypoint correspondences with the references, rank them and
write the selection with its contact sheet. The callbacks, `realfill.sample`, the baselines and
the benchmark all use it."""

from realfill.selection.compositing import FeatheredComposite, composite, feather_mask
from realfill.selection.contact_sheet import contact_sheet
from realfill.selection.matchers import LoFTRMatcher, Matcher, SIFTMatcher
from realfill.selection.ranking import correspondence_scores, rank
from realfill.selection.sampling import Inpainter, composited_completions
from realfill.selection.settings import SamplingSettings, SelectionSettings
from realfill.selection.writing import (
    RankedCandidate,
    Selection,
    rank_share,
    report_selection,
    score_candidates,
    write_selection,
)

__all__ = [
    "FeatheredComposite",
    "Inpainter",
    "LoFTRMatcher",
    "Matcher",
    "RankedCandidate",
    "SIFTMatcher",
    "SamplingSettings",
    "Selection",
    "SelectionSettings",
    "composite",
    "composited_completions",
    "contact_sheet",
    "correspondence_scores",
    "feather_mask",
    "rank",
    "rank_share",
    "report_selection",
    "score_candidates",
    "write_selection",
]
