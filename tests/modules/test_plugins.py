"""Every plug-in (see `PLUGINS` in conftest.py) trains on a real scene batch, samples and
composites; then what is specific to one family."""

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from realfill.callbacks.compositing import composite, feather_mask, mask_to_tensor
from realfill.data import SceneDataModule, load_scene
from realfill.errors import ModelLoadError
from realfill.modules import (
    FluxFillInpainting,
    RealFillModule,
    StableDiffusionInpainting,
    StableDiffusionXLInpainting,
    TinyStableDiffusionXLInpainting,
)

RESOLUTION = 32
STEPS = 3


def quiet_trainer(root: Path, **settings) -> L.Trainer:
    """A CPU trainer that writes nothing but what the test asks for."""
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **settings,
    )


def test_a_few_training_steps_on_scene_batches_move_the_adapters(base, scene_dir, tmp_path):
    data = SceneDataModule(
        str(scene_dir), resolution=RESOLUTION, batch_size=2, num_workers=0, samples_per_epoch=4
    )
    module = RealFillModule(base, warmup_steps=1, denoiser_learning_rate=1e-2)
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    trainer = quiet_trainer(tmp_path, max_steps=STEPS)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == STEPS
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    after = dict(module.named_parameters())
    assert any(not torch.equal(after[n], value) for n, value in before.items())
    assert all(not p.requires_grad for n, p in module.named_parameters() if "lora_" not in n)


def test_sampled_completions_composite_onto_the_target(plugin, base, scene_dir):
    scene = load_scene(scene_dir)
    module = RealFillModule(base)
    sampling = {"resolution": RESOLUTION, "num_inference_steps": 3, **plugin.sampling}
    raw = module.generate(scene.target, scene.mask, [0, 1], progress=False, **sampling)
    assert len(raw) == 2 and not np.array_equal(np.asarray(raw[0]), np.asarray(raw[1]))
    for image in raw:
        completed = composite(image, scene.target, scene.mask)
        assert completed.size == scene.target.size
        away = feather_mask(mask_to_tensor(scene.mask)).numpy() == 0
        assert np.array_equal(np.asarray(completed)[away], np.asarray(scene.target)[away])
        assert not np.array_equal(np.asarray(completed), np.asarray(scene.target))


@pytest.mark.parametrize(
    "plugin_class", [StableDiffusionInpainting, StableDiffusionXLInpainting, FluxFillInpainting]
)
def test_a_missing_base_model_fails_in_one_line(plugin_class, tmp_path):
    with pytest.raises(ModelLoadError) as error:
        plugin_class(pretrained_model_name_or_path=str(tmp_path / "missing"))
    assert "\n" not in str(error.value) and "missing" in str(error.value)


# ---- SDXL -----------------------------------------------------------------------------------


def spy_time_ids(module: RealFillModule) -> list[torch.Tensor]:
    """Record the time ids every UNet call receives."""
    seen: list[torch.Tensor] = []
    unet = module.base_model.unet
    forward = unet.forward

    def recording(*args, added_cond_kwargs, **kwargs):
        seen.append(added_cond_kwargs["time_ids"])
        return forward(*args, added_cond_kwargs=added_cond_kwargs, **kwargs)

    unet.forward = recording
    return seen


def test_sdxl_time_ids_are_each_samples_original_size_crop_and_target_size():
    module = RealFillModule(TinyStableDiffusionXLInpainting())
    seen = spy_time_ids(module)
    batch = {
        "pixels": torch.zeros(2, 3, RESOLUTION, RESOLUTION),
        "training_mask": torch.ones(2, 1, RESOLUTION, RESOLUTION),
        "known_mask": torch.ones(2, 1, RESOLUTION, RESOLUTION),
        "original_size": torch.tensor([[480, 640], [1000, 750]]),
        "crop_top_left": torch.tensor([[3, 17], [0, 9]]),
    }
    module.masked_loss(batch)
    expected = torch.tensor([[480, 640, 3, 17, 32, 32], [1000, 750, 0, 9, 32, 32]]).float()
    assert len(seen) == 1 and torch.equal(seen[0], expected)
    with pytest.raises(KeyError, match="crop_top_left"):
        module.masked_loss({k: v for k, v in batch.items() if k != "crop_top_left"})


def test_sdxl_adapts_both_text_encoders_by_default():
    module = RealFillModule(TinyStableDiffusionXLInpainting())
    trainable = {n.split(".")[1] for n, p in module.named_parameters() if p.requires_grad}
    assert trainable == {"unet", "text_encoder", "text_encoder_2"}


def test_sdxl_vae_stays_fp32_under_bf16_and_after_bf16_sampling():
    module = RealFillModule(TinyStableDiffusionXLInpainting())
    module.base_model.cast_frozen(torch.bfloat16)
    vae = module.base_model.vae
    assert vae.dtype == torch.float32 and module.base_model.unet.dtype == torch.bfloat16
    target = Image.new("RGB", (32, 32), (200, 30, 90))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    module.generate(target, mask, [0], resolution=RESOLUTION, num_inference_steps=2, progress=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        latents = module.base_model.encode_images(torch.zeros(1, 3, RESOLUTION, RESOLUTION))
    assert vae.dtype == torch.float32 and latents.dtype == torch.bfloat16


def test_sdxl_vae_follows_the_compute_dtype_when_asked():
    base = TinyStableDiffusionXLInpainting(vae_in_fp32=False)
    base.cast_frozen(torch.bfloat16)
    assert base.vae.dtype == torch.bfloat16
