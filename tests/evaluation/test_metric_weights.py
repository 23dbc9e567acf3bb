"""Where LPIPS and DreamSim find their weights, what they say when the weights are not there,
and, with the eval extra installed (`pip install -e ".[eval]"`), all six metrics at once."""

import sys
import types
import urllib.error
from pathlib import Path

import pytest
import torch
from PIL import Image

from realfill.evaluate import main
from realfill.evaluation.backbones import (
    LABELS,
    METRICS,
    MetricSettings,
    MetricSuite,
    dreamsim_cache,
)

OFFLINE = urllib.error.URLError("[Errno -2] Name or service not known")


def test_lpips_weights_that_cannot_be_downloaded_name_the_folder_and_the_fix(monkeypatch):
    import torchmetrics.image.lpip as lpip

    def offline(net_type, normalize):
        raise OFFLINE

    monkeypatch.setattr(lpip, "LearnedPerceptualImagePatchSimilarity", offline)
    reason = MetricSuite(MetricSettings(lpips_net="vgg")).unavailable["lpips"]
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert reason.startswith(
        f"torchvision's ImageNet weights for the vgg backbone are not in {checkpoints} and cannot"
        " be downloaded here (URLError: <urlopen error [Errno -2] Name or service not known>)"
    )
    assert "L(net_type='vgg')" in reason and "\n" not in reason


def test_dreamsim_keeps_its_weights_in_torch_hub_and_leaves_torch_hub_where_it_was(
    tmp_path, monkeypatch
):
    """The dreamsim package's default folder is ./models (wherever the user is) and it points
    torch.hub at that folder for good; neither may leak out of the metric."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = torch.hub.get_dir()
    assert dreamsim_cache(None) == Path(hub) / "dreamsim"
    seen = {}

    def dreamsim(pretrained, dreamsim_type, device, cache_dir):
        seen["cache_dir"] = cache_dir
        torch.hub.set_dir(cache_dir)
        raise OFFLINE

    monkeypatch.setitem(sys.modules, "dreamsim", types.SimpleNamespace(dreamsim=dreamsim))
    monkeypatch.chdir(tmp_path)
    reason = MetricSuite(MetricSettings(dreamsim_type="dino_vitb16")).unavailable["dreamsim"]
    folder = Path(hub) / "dreamsim"
    assert seen["cache_dir"] == str(folder) and folder.is_dir()
    assert torch.hub.get_dir() == hub and torch.hub._hub_dir is None  # $TORCH_HOME rules
    assert not (tmp_path / "models").exists()
    assert reason.startswith(
        f"DreamSim's dino_vitb16 weights are not all in {folder} and cannot be downloaded here "
        "(URLError: <urlopen error [Errno -2] Name or service not known>)"
    )
    assert f"dreamsim(dreamsim_type='dino_vitb16', device='cpu', cache_dir='{folder}')" in reason


@pytest.mark.slow
def test_with_the_eval_extra_and_weights_in_place_all_six_metrics_report(
    monkeypatch, local_models, metric_weights
):
    monkeypatch.setenv("TORCH_HOME", str(metric_weights / "torch"))
    settings = MetricSettings(
        dreamsim_type="clip_vitb32",
        dreamsim_cache_dir=str(metric_weights / "dreamsim"),
        dino_model=str(local_models / "dino"),
        clip_model=str(local_models / "clip"),
    )
    suite = MetricSuite(settings)
    assert suite.unavailable == {}
    truth = Image.effect_noise((64, 48), 40).convert("RGB")
    mask = Image.new("L", truth.size, 0)
    mask.paste(255, (16, 12, 40, 30))
    same = suite.score(truth.copy(), truth, mask)
    assert list(same) == list(METRICS)
    assert same["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert same["dreamsim"] == pytest.approx(0.0, abs=1e-4)
    other = truth.copy()
    other.paste((200, 30, 30), (16, 12, 40, 30))
    changed = suite.score(other, truth, mask)
    assert changed["lpips"] > 1e-3 and changed["dreamsim"] > 1e-4


def check_metrics(capsys, *args: str) -> tuple[int, list[str]]:
    """`realfill.evaluate --check_metrics ARGS`: its exit code and its lines."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--check_metrics", *args])
    return exit_info.value.code, capsys.readouterr().out.splitlines()


@pytest.mark.slow
def test_check_metrics_says_all_six_are_available_when_their_weights_are_in_place(
    monkeypatch, capsys, local_models, metric_weights
):
    monkeypatch.setenv("TORCH_HOME", str(metric_weights / "torch"))
    config = metric_weights / "metrics.yaml"
    config.write_text("metrics:\n  dreamsim_type: clip_vitb32\n")
    code, lines = check_metrics(
        capsys,
        f"--metrics_config={config}",
        f"--dreamsim_cache_dir={metric_weights / 'dreamsim'}",
        f"--dino_model={local_models / 'dino'}",
        f"--clip_model={local_models / 'clip'}",
    )
    assert code == 0
    assert lines == [f"{LABELS[name]}: available" for name in METRICS]


def test_check_metrics_offline_names_each_missing_one_and_exits_1(tmp_path, monkeypatch, capsys):
    import torchmetrics.image.lpip as lpip

    def offline(*args, **kwargs):
        raise OFFLINE

    monkeypatch.setattr(lpip, "LearnedPerceptualImagePatchSimilarity", offline)
    monkeypatch.setitem(sys.modules, "dreamsim", types.SimpleNamespace(dreamsim=offline))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, lines = check_metrics(
        capsys,
        f"--dreamsim_cache_dir={tmp_path / 'dreamsim'}",
        "--dino_model=nobody/no-such-dino",
        f"--clip_model={tmp_path / 'no-clip'}",
    )
    assert code == 1
    assert lines[:2] == ["PSNR ↑: available", "SSIM ↑: available"]
    names = [line.split(":")[0] for line in lines[2:]]
    assert names == ["LPIPS ↓", "DreamSim ↓", "DINO ↑", "CLIP ↑"]
    assert all(": unavailable (" in line for line in lines[2:])
    assert "hf download nobody/no-such-dino" in lines[4]


def test_evaluate_without_a_benchmark_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--results", "somewhere"])
    assert exit_info.value.code == 2
    assert "--benchmark and --results are required" in capsys.readouterr().err
