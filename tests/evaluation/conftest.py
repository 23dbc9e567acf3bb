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
