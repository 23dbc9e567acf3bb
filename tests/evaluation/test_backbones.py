"""The metric suite: networks from a local folder, and unavailable metrics reported as such."""

import pytest
import torch
from PIL import Image

from realfill.errors import ConfigError
from realfill.evaluation.backbones import (
    METRICS,
    EmbeddingCosine,
    MetricSettings,
    MetricSuite,
    load_lpips,
)
from realfill.evaluation.report import candidates_csv, format_value, markdown_table, mean
from realfill.evaluation.results import CandidateResult

SIZE = (64, 48)


def textured_image(width: int, height: int, seed: int) -> Image.Image:
    """A smooth random colour field."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 256, (height // 8 + 1, width // 8 + 1, 3), generator=generator)
    small = Image.fromarray(coarse.to(torch.uint8).numpy())
    return small.resize((width, height), Image.Resampling.BICUBIC)


def scene_images(seed: int = 1) -> tuple[Image.Image, Image.Image, Image.Image]:
    truth = textured_image(*SIZE, seed=seed)
    mask = Image.new("L", SIZE, 0)
    mask.paste(255, (16, 12, 40, 30))
    return truth, truth.copy(), mask


def test_embedding_metrics_load_from_a_local_folder(local_models):
    settings = MetricSettings(
        dino_model=str(local_models / "dino"), clip_model=str(local_models / "clip")
    )
    suite = MetricSuite(settings)
    assert {"psnr", "ssim", "dino", "clip"} <= set(suite.scorers)
    truth, same, mask = scene_images()
    values = suite.score(same, truth, mask)
    assert values["dino"] == pytest.approx(1.0, abs=1e-5)
    assert values["clip"] == pytest.approx(1.0, abs=1e-5)
    other = suite.score(textured_image(*SIZE, seed=7), truth, mask)
    assert other["dino"] < 1.0 - 1e-4 and other["clip"] < 1.0 - 1e-4
    assert set(values) == set(METRICS)


def test_a_backbone_that_cannot_load_is_unavailable_and_the_rest_still_run(tmp_path):
    settings = MetricSettings(
        dino_model=str(tmp_path / "no-dino"),
        clip_model=str(tmp_path / "no-clip"),
        dreamsim_cache_dir=str(tmp_path / "no-dreamsim"),
    )
    suite = MetricSuite(settings)
    assert {"dino", "clip"} <= set(suite.unavailable)
    assert str(tmp_path / "no-dino") in suite.unavailable["dino"]
    truth, same, mask = scene_images()
    values = suite.score(same, truth, mask)
    for metric in suite.unavailable:
        assert values[metric] is None  # never 0, never dropped
    assert values["psnr"] == float("inf") and values["ssim"] == pytest.approx(1.0)


def test_injected_loaders_failing_one_by_one():
    def broken():
        raise RuntimeError("no weights here\nsecond line")

    suite = MetricSuite(loaders={"psnr": broken})
    assert suite.unavailable == {"psnr": "RuntimeError: no weights here"}
    assert suite.scorers == {}


def test_unavailable_values_are_written_as_unavailable():
    assert mean([1.0, None]) is None and mean([1.0, 3.0]) == 2.0
    assert format_value("dino", None) == "unavailable"
    assert format_value("psnr", float("inf")) == "inf"
    table = markdown_table({"m": dict.fromkeys(METRICS) | {"psnr": 12.345}}, "method")
    assert table.splitlines()[0].startswith("| method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | DreamSim ↓")
    assert "| m | 12.35 | unavailable |" in table
    result = CandidateResult("m", "s", 0, 3, 1, True, "f.png", {"psnr": 20.125, "clip": None})
    row = candidates_csv([result]).splitlines()[1]
    assert row.endswith("20.125,unavailable,unavailable,unavailable,unavailable,unavailable")


def test_unknown_metric_settings_are_rejected():
    with pytest.raises(ValueError, match="dino_modle"):
        MetricSettings.from_mapping({"dino_modle": "x"})


def test_embedding_cosine_embeds_a_ground_truth_once_for_its_candidates():
    embedded = []

    def embed(image: Image.Image) -> torch.Tensor:
        embedded.append(image.getpixel((0, 0)))
        return torch.tensor([[float(image.getpixel((0, 0))[0]), 1.0]])

    score = EmbeddingCosine(embed)
    truth, other_truth = Image.new("RGB", (4, 4), (9, 0, 0)), Image.new("RGB", (4, 4), (5, 0, 0))
    candidates = [Image.new("RGB", (4, 4), (value, 0, 0)) for value in (1, 2, 9)]
    values = [score(candidate, truth, truth) for candidate in candidates]
    assert values[2] == pytest.approx(1.0) and values[0] < values[1] < values[2]
    assert len(embedded) == 4  # three candidates and one ground truth
    score(candidates[0], other_truth, other_truth)
    assert len(embedded) == 6  # another ground truth is embedded anew


def test_a_missing_package_is_named_with_how_to_install_it():
    def needs_torchvision():
        raise ModuleNotFoundError("LPIPS metric requires that torchvision is installed.")

    def needs_dreamsim():
        raise ModuleNotFoundError("No module named 'dreamsim'", name="dreamsim")

    suite = MetricSuite(loaders={"lpips": needs_torchvision, "dreamsim": needs_dreamsim})
    assert suite.unavailable == {
        "lpips": "the Python package torchvision is not installed (pip install torchvision)",
        "dreamsim": "the Python package dreamsim is not installed (pip install dreamsim)",
    }


def test_weights_missing_offline_say_so_and_how_to_get_them(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite = MetricSuite(MetricSettings(dino_model="nobody/no-such-dino"))
    assert suite.unavailable["dino"] == (
        "nobody/no-such-dino is not a local folder nor in the Hugging Face cache, and the hub "
        "is offline (HF_HUB_OFFLINE=1): download it where there is network (hf download "
        "nobody/no-such-dino) or give a local folder"
    )


def test_a_long_reason_is_kept_whole():
    def verbose():
        raise RuntimeError("x" * 400)

    assert (
        MetricSuite(loaders={"psnr": verbose}).unavailable["psnr"] == "RuntimeError: " + "x" * 400
    )


def test_lpips_follows_the_papers_protocol_by_default_and_names_it(monkeypatch):
    """lpips_region "mask" (default) averages torchmetrics' spatial LPIPS map over the mask;
    "box" is the bounding-box variant; each protocol is stated for the report's header."""
    import torchmetrics.image.lpip as lpip

    class SpatialNet(torch.nn.Module):
        spatial = False

        def forward(self, first, second, normalize=False):
            assert normalize and self.spatial
            return (first - second).abs().mean(dim=1, keepdim=True)

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net_type, normalize):
            super().__init__()
            self.net = SpatialNet()

        def reset(self):
            pass

        def forward(self, first, second):
            return (first - second).abs().flatten(1).mean(dim=1)

    monkeypatch.setattr(lpip, "LearnedPerceptualImagePatchSimilarity", FakeLPIPS)
    truth = Image.new("RGB", (64, 48), (100, 100, 100))
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (0, 0, 64, 8))  # a thin border strip: 1/6 of the image
    completion = truth.copy()
    completion.paste((151, 151, 151), (0, 0, 64, 8))
    paper = MetricSettings()
    assert paper.lpips_region == "mask" and "paper's protocol" in paper.protocol
    inside = load_lpips("alex", "cpu", paper.lpips_region)(completion, truth, mask)
    assert inside == pytest.approx(51 / 255, abs=1e-6)
    box = load_lpips("alex", "cpu", "box")(completion, truth, mask)
    assert box < inside  # the crop, grown to 32 px, holds known pixels too
    assert "not the paper's protocol" in MetricSettings(lpips_region="box").protocol
    with pytest.raises(ConfigError, match="lpips_region must be one of"):
        MetricSettings.from_mapping({"lpips_region": "bbox"})
