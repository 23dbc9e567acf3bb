"""Where LPIPS and DreamSim find their weights, what they say when the weights are not there,
and, with the eval extra installed (`pip install -e ".[eval]"`), all six metrics at once."""

import sys
import types
import urllib.error
from pathlib import Path

import pytest
import torch
from PIL import Image

from realfill.evaluation.backbones import METRICS, MetricSettings, MetricSuite, dreamsim_cache

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


def random_lpips_backbone(torch_home: Path) -> None:
    """Random AlexNet weights where torchvision looks for its ImageNet ones."""
    import torchvision

    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(torchvision.models.alexnet().state_dict(), checkpoints / Path(url).name)


def random_dreamsim(folder: Path) -> None:
    """Random weights in DreamSim's layout for its single-model clip_vitb32 type: the CLIP
    ViT-B/32 as DINO-style weights with its projection, and the LoRA adapter on top."""
    from dreamsim.feature_extraction.vision_transformer import vit_base
    from dreamsim.model import PerceptualModel
    from peft import LoraConfig, get_peft_model

    folder.mkdir(parents=True)
    vit = vit_base(patch_size=32)
    vit.pos_drop = torch.nn.LayerNorm(vit.embed_dim)
    state = vit.state_dict() | {"proj": torch.randn(vit.embed_dim, 512) * 0.02}
    torch.save({"state_dict": state}, folder / "clip_vitb32_pretrain.pth.tar")
    model = PerceptualModel(
        model_type="clip_vitb32",
        feat_type="embedding",
        stride="32",
        load_dir=str(folder),
        device="cpu",
    )
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", target_modules=["qkv"])
    get_peft_model(model, lora).save_pretrained(folder / "clip_vitb32_single_lora")


@pytest.mark.slow
def test_with_the_eval_extra_and_weights_in_place_all_six_metrics_report(
    tmp_path, monkeypatch, local_models
):
    pytest.importorskip("torchvision", reason='needs the eval extra: pip install -e ".[eval]"')
    pytest.importorskip("dreamsim", reason='needs the eval extra: pip install -e ".[eval]"')
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    random_lpips_backbone(tmp_path / "torch")
    random_dreamsim(tmp_path / "dreamsim")
    settings = MetricSettings(
        dreamsim_type="clip_vitb32",
        dreamsim_cache_dir=str(tmp_path / "dreamsim"),
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
