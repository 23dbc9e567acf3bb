"""Correspondence ranking on a real photograph: the true content must rank first."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realfill.data import load_scene
from realfill.errors import ModelLoadError
from realfill.selection.compositing import composite
from realfill.selection.matchers import LoFTRMatcher, SIFTMatcher
from realfill.selection.ranking import (
    correspondence_scores,
    count_in_region,
    rank,
    scoring_region,
)
from realfill.stopping import stop_checked

EXAMPLE_SCENE = Path(__file__).resolve().parents[2] / "examples" / "motorcycle"


@pytest.mark.parametrize("descriptor_backend", ["pyramid", "patch"])
def test_true_content_ranks_above_noise_blur_and_flat_fills(descriptor_backend):
    scene = load_scene(EXAMPLE_SCENE)
    truth = scene.ground_truth
    rng = np.random.default_rng(0)
    fills = {
        "truth": truth,
        "noise": Image.fromarray(rng.integers(0, 256, (truth.height, truth.width, 3), np.uint8)),
        "flat": Image.new("RGB", truth.size, (128, 128, 128)),
        "blurred": truth.resize((truth.width // 8, truth.height // 8)).resize(truth.size),
    }
    matcher = SIFTMatcher(descriptor_backend=descriptor_backend)
    candidates = [composite(fill, scene.target, scene.mask) for fill in fills.values()]
    scored = correspondence_scores(candidates, scene.mask, scene.references, matcher)
    scores = dict(zip(fills, scored, strict=True))
    assert rank(list(scores.values()))[0] == 0, scores
    assert scores["truth"] > 4 * max(scores["noise"], scores["flat"], scores["blurred"]), scores


def test_scoring_region_grows_the_mask_by_the_margin():
    mask = Image.new("L", (20, 10), 0)
    mask.putpixel((10, 5), 255)
    region = scoring_region(mask, margin=2)
    assert region.sum() == 25 and region[5, 8] and region[3, 12] and not region[5, 7]


def test_count_in_region_rounds_and_clamps_keypoints():
    region = torch.zeros(4, 6, dtype=torch.bool)
    region[1, 2] = True
    points = torch.tensor([[2.2, 0.9], [5.9, 3.9], [100.0, 100.0], [1.0, 1.0]])
    assert count_in_region(points, region) == 1
    assert count_in_region(torch.zeros(0, 2), region) == 0


def test_rank_is_best_first_and_stable_on_ties():
    assert rank([3, 9, 3, 10]) == [3, 1, 0, 2]


def test_loftr_without_weights_says_so_in_one_line(tmp_path):
    missing = tmp_path / "loftr.ckpt"
    with pytest.raises(ModelLoadError) as error:
        LoFTRMatcher(weights_path=str(missing))
    message = str(error.value)
    assert "\n" not in message and str(missing) in message and "SIFTMatcher" in message


def test_ransac_draws_at_most_its_budget_of_hypotheses_on_pure_outliers(monkeypatch):
    """Unrelated points never reach RANSAC's confidence, so it runs its whole budget: that
    budget is `ransac_iterations` hypotheses, not batches of them."""
    matcher = SIFTMatcher(ransac_iterations=1000)
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(2, 300, 2, generator=generator) * 500
    monkeypatch.setattr(matcher, "tentative_matches", lambda a, b: (points[0], points[1]))
    drawn = []
    sample = matcher.ransac.sample

    def counting(*args, **kwargs):
        indices = sample(*args, **kwargs)
        drawn.append(len(indices))
        return indices

    monkeypatch.setattr(matcher.ransac, "sample", counting)
    image = Image.new("RGB", (64, 64))
    matcher.match(image, image)
    assert 0 < sum(drawn) <= 1000


def test_references_are_described_once_for_all_candidates_even_past_eight():
    """Ten references and three candidates: 13 descriptions, not one per pair."""
    scene = load_scene(EXAMPLE_SCENE)
    references = [scene.references[0].rotate(angle) for angle in range(10)]
    matcher = SIFTMatcher(num_features=64)
    described = []
    describe = matcher.describe
    matcher.describe = lambda gray: described.append(gray.shape) or describe(gray)
    for fill in (0, 128, 255):  # one candidate per call, as periodic sampling would
        candidate = Image.new("RGB", scene.target.size, (fill,) * 3)
        correspondence_scores([candidate], scene.mask, references, matcher)
    assert len(described) == 13


def test_images_are_described_with_autograd_off():
    """Describing with autograd on makes torch pick slower CPU kernels: ranking pumpkinlady2's
    16 candidates took 18.5 s, against about 12 s with it off."""
    matcher = SIFTMatcher(num_features=64)
    grad_enabled = []
    describe = matcher.describe
    matcher.describe = lambda gray: grad_enabled.append(torch.is_grad_enabled()) or describe(gray)
    scene = load_scene(EXAMPLE_SCENE)
    correspondence_scores([scene.target], scene.mask, scene.references, matcher)
    assert grad_enabled == [False, False]


def test_a_reference_too_small_to_describe_scores_nothing_and_the_others_still_count():
    """A thumbnail or a long thin strip is too small for SIFT's pyramid (32 px at the matching
    size): it adds no correspondences instead of crashing the selection after training."""
    scene = load_scene(EXAMPLE_SCENE)
    strip = scene.references[0].resize((400, 30))
    matcher = SIFTMatcher(max_side=320)
    with_strip = correspondence_scores([scene.ground_truth], scene.mask, [strip], matcher)
    assert with_strip == [0]
    alone = correspondence_scores([scene.ground_truth], scene.mask, scene.references, matcher)
    both = correspondence_scores(
        [scene.ground_truth], scene.mask, [*scene.references, strip], matcher
    )
    assert both == alone and alone[0] > 0


def test_matchers_keep_their_old_config_paths():
    """Configs written before the selection package name `realfill.callbacks.SIFTMatcher`."""
    import realfill.callbacks
    import realfill.selection

    assert realfill.callbacks.SIFTMatcher is realfill.selection.SIFTMatcher
    assert realfill.callbacks.LoFTRMatcher is realfill.selection.LoFTRMatcher


def test_scores_are_the_same_under_a_mixed_precision_context():
    """`realfill.sample` scores inside Lightning's predict step, which runs under bf16
    autocast in a bf16-mixed run: matching must stay fp32 there, or half the matches go."""
    scene = load_scene(EXAMPLE_SCENE)
    flat = Image.new("RGB", scene.target.size, (128, 128, 128))
    candidates = [scene.ground_truth, composite(flat, scene.target, scene.mask)]
    expected = correspondence_scores(candidates, scene.mask, scene.references, SIFTMatcher(), 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = correspondence_scores(candidates, scene.mask, scene.references, SIFTMatcher(), 16)
    assert mixed == expected


def test_a_stop_request_stops_ranking_before_the_next_candidate():
    """A SIGTERM recorded while ranking a fit's 64 candidates stops it within one candidate,
    not after all of them (see `realfill.stopping`)."""
    scene = load_scene(EXAMPLE_SCENE)
    matcher = SIFTMatcher(num_features=64)
    candidates = [Image.new("RGB", scene.target.size, (fill,) * 3) for fill in (0, 128, 255)]
    described = []
    features = matcher.features
    matcher.features = lambda image: described.append(image) or features(image)

    def stop_at_the_second() -> None:
        if len(described) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), stop_checked(stop_at_the_second):
        correspondence_scores(candidates, scene.mask, scene.references, matcher)
    assert len(described) == 1
    assert correspondence_scores(candidates, scene.mask, scene.references, matcher)  # unchecked
