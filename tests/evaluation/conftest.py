"""A benchmark built from the real motorcycle stereo pair (the builder in examples/)."""

from pathlib import Path

import pytest
import torch

SHORT_SIDE = 96
"""Small scenes keep the CLI tests fast; the method's behaviour does not depend on size."""


@pytest.fixture(scope="session")
def motorcycle_benchmark(tmp_path_factory, motorcycle_builder) -> Path:
    """motorcycle_inpaint and motorcycle_outpaint, short side 96 px."""
    root = tmp_path_factory.mktemp("bench") / "benchmark"
    motorcycle_builder.build_benchmark(root, SHORT_SIDE, jpeg_quality=90)
    return root


@pytest.fixture(scope="session")
def local_models(tmp_path_factory):
    """A tiny random DINO-style ViT and a tiny CLIP vision tower, saved as local folders."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    root = tmp_path_factory.mktemp("backbones")
    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    small |= {"intermediate_size": 64, "image_size": 32, "patch_size": 8}
    ViTModel(ViTConfig(**small), add_pooling_layer=False).save_pretrained(root / "dino")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "dino")
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**small, projection_dim=16))
    clip.save_pretrained(root / "clip")
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    processor.save_pretrained(root / "clip")
    return root


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


@pytest.fixture(scope="session")
def metric_weights(tmp_path_factory) -> Path:
    """Random weights where LPIPS (`torch/`, a $TORCH_HOME) and DreamSim's clip_vitb32
    (`dreamsim/`) look for theirs; needs the eval extra (torchvision, dreamsim)."""
    pytest.importorskip("torchvision", reason='needs the eval extra: pip install -e ".[eval]"')
    pytest.importorskip("dreamsim", reason='needs the eval extra: pip install -e ".[eval]"')
    root = tmp_path_factory.mktemp("metric_weights")
    random_lpips_backbone(root / "torch")
    random_dreamsim(root / "dreamsim")
    return root
