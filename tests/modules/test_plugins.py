"""Every plug-in (see `PLUGINS` and `LOADERS` in conftest.py) trains on a real scene batch,
samples and composites; then what is specific to one family."""

import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from realfill.data import SceneDataModule, load_scene
from realfill.errors import ModelLoadError
from realfill.modules import (
    OptimizationSettings,
    RealFillModule,
    StableDiffusionXLInpainting,
    TinyStableDiffusionXLInpainting,
)
from realfill.modules.lora_io import LORA_WEIGHTS_NAME
from realfill.modules.sdxl import StableDiffusionXLFamily
from realfill.selection.compositing import composite, feather_mask, mask_to_tensor

REPO = Path(__file__).resolve().parents[2]
RESOLUTION = 32
STEPS = 3


def training_batch(size: int = RESOLUTION) -> dict[str, torch.Tensor]:
    """Two random images with `SceneDataModule`'s keys, each with a hole to fill."""
    generator = torch.Generator().manual_seed(0)
    training_mask = torch.zeros(2, 1, size, size)
    training_mask[:, :, size // 4 : size // 2, size // 4 :] = 1.0
    return {
        "pixels": torch.rand(2, 3, size, size, generator=generator) * 2 - 1,
        "training_mask": training_mask,
        "known_mask": torch.ones(2, 1, size, size),
        "original_size": torch.tensor([[2 * size, size], [size, size]]),
        "crop_top_left": torch.tensor([[3, 0], [0, 0]]),
    }


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


def test_a_few_training_steps_on_scene_batches_move_the_adapters(
    contract_base, scene_dir, tmp_path
):
    data = SceneDataModule(
        str(scene_dir), resolution=RESOLUTION, batch_size=2, num_workers=0, samples_per_epoch=4
    )
    optimization = OptimizationSettings(warmup_steps=1, denoiser_learning_rate=1e-2)
    module = RealFillModule(contract_base, optimization=optimization)
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    trainer = quiet_trainer(tmp_path, max_steps=STEPS)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == STEPS
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    after = dict(module.named_parameters())
    assert any(not torch.equal(after[n], value) for n, value in before.items())
    assert all(not p.requires_grad for n, p in module.named_parameters() if "lora_" not in n)


def test_every_trainable_parameter_gets_a_gradient_from_one_training_loss(base):
    """What Lightning's plain `ddp` strategy needs: it stops at the first step when a parameter
    that requires a gradient took no part in the loss (an adapter on an unused layer)."""
    module = RealFillModule(base)
    module.masked_loss(training_batch()).backward()
    idle = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert idle == []


def test_sampled_completions_composite_onto_the_target(contract_base, scene_dir):
    scene = load_scene(scene_dir)
    module = RealFillModule(contract_base)
    sampling = {"resolution": RESOLUTION, "num_inference_steps": 3}
    raw = module.generate(scene.target, scene.mask, [0, 1], progress=False, **sampling)
    assert len(raw) == 2 and not np.array_equal(np.asarray(raw[0]), np.asarray(raw[1]))
    for image in raw:
        completed = composite(image, scene.target, scene.mask)
        assert completed.size == scene.target.size
        away = feather_mask(mask_to_tensor(scene.mask)).numpy() == 0
        assert np.array_equal(np.asarray(completed)[away], np.asarray(scene.target)[away])
        assert not np.array_equal(np.asarray(completed), np.asarray(scene.target))


def test_the_family_declares_components_its_stock_pipeline_takes(contract_plugin, contract_base):
    """What the base class derives the adapters, the LoRA file and the pipeline from: the
    denoiser is the first adapted component, every adapted one is a component, and the stock
    pipeline is built over all of them and saves LoRA files."""
    base = contract_base
    adapted = list(base.adapted)
    assert adapted[0] == base.denoiser_name and base.denoiser is getattr(base, base.denoiser_name)
    assert set(adapted) <= set(base.component_names)
    assert issubclass(base.pipeline_class, contract_plugin.stock_pipeline)
    assert hasattr(base.pipeline_class, "save_lora_weights")
    pipeline = base.pipeline()
    assert all(pipeline.components[name] is getattr(base, name) for name in adapted)
    assert all(not p.requires_grad for p in base.parameters())


def test_a_missing_base_model_fails_in_one_line(loader, tmp_path):
    with pytest.raises(ModelLoadError) as error:
        loader(pretrained_model_name_or_path=str(tmp_path / "missing"))
    assert "\n" not in str(error.value) and "missing" in str(error.value)


# ---- SDXL -----------------------------------------------------------------------------------


def test_sdxl_load_errors_name_what_failed_to_load(tmp_path):
    checkpoint = str(tmp_path / "checkpoint")
    TinyStableDiffusionXLInpainting().pipeline().save_pretrained(checkpoint)
    vae = str(tmp_path / "checkpoint" / "vae")
    StableDiffusionXLInpainting(checkpoint, vae_name_or_path=vae)
    missing_checkpoint, missing_vae = str(tmp_path / "no-checkpoint"), str(tmp_path / "no-vae")
    for model, replacement_vae, failed, loaded, option in (
        (missing_checkpoint, vae, missing_checkpoint, vae, "pretrained_model_name_or_path"),
        (checkpoint, missing_vae, missing_vae, checkpoint, "vae_name_or_path"),
    ):
        with pytest.raises(ModelLoadError) as error:
            StableDiffusionXLInpainting(model, vae_name_or_path=replacement_vae)
        message = str(error.value)
        assert "\n" not in message and repr(failed) in message and repr(loaded) not in message
        assert f"init_args.{option} " in message


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


@pytest.mark.parametrize("stored", [torch.float32, torch.bfloat16])
def test_sdxl_vae_decodes_in_fp32_under_bf16_and_stays_fp32_after_sampling(stored):
    """`stored`: the VAE as `cast_frozen` leaves it, or cast to bf16 by a whole-module `.to`."""
    module = RealFillModule(TinyStableDiffusionXLInpainting())
    module.base_model.cast_frozen(torch.bfloat16)
    vae = module.base_model.vae
    assert vae.dtype == torch.float32 and module.base_model.unet.dtype == torch.bfloat16
    vae.to(stored)
    decoding: list[tuple[torch.dtype, torch.dtype]] = []
    vae.decoder.register_forward_pre_hook(
        lambda decoder, inputs: decoding.append((next(decoder.parameters()).dtype, inputs[0].dtype))
    )
    target = Image.new("RGB", (32, 32), (200, 30, 90))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    module.generate(target, mask, [0], resolution=RESOLUTION, num_inference_steps=2, progress=False)
    assert decoding == [(torch.float32, torch.float32)]
    assert vae.dtype == torch.float32 and module.base_model.unet.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        latents = module.base_model.encode_images(torch.zeros(1, 3, RESOLUTION, RESOLUTION))
    assert vae.dtype == torch.float32 and latents.dtype == torch.bfloat16


def test_sdxl_vae_follows_the_compute_dtype_when_asked():
    base = TinyStableDiffusionXLInpainting(vae_in_fp32=False)
    base.cast_frozen(torch.bfloat16)
    assert base.vae.dtype == torch.bfloat16


@pytest.mark.slow
def test_two_process_ddp_fit_of_tiny_sdxl_writes_the_lora(tmp_path, run_command):
    """configs/sdxl.yaml stacked with configs/trainer/ddp.yaml (plain `ddp`), on the tiny twin."""
    preset = {
        "trainer": {
            "logger": False,
            "enable_checkpointing": False,
            "callbacks": [{"class_path": "realfill.callbacks.SaveLoRA"}],
        },
        "selection": None,
    }
    (tmp_path / "lora_only.yaml").write_text(yaml.safe_dump(preset))
    run_dir = tmp_path / "run"
    result = run_command(
        "realfill.fit",
        "--config",
        str(REPO / "configs" / "tiny_sdxl.yaml"),
        "--config",
        str(tmp_path / "lora_only.yaml"),
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.max_steps=2",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--data.batch_size=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "lora" / LORA_WEIGHTS_NAME).is_file()


def test_an_sdxl_lora_saved_with_the_idle_last_layer_adapter_still_loads(tmp_path, monkeypatch):
    """LoRAs saved before the first text encoder's last layer lost its (never trained)
    adapter hold its weights; loading leaves them out and takes the rest."""
    with monkeypatch.context() as patched:
        patched.setattr(StableDiffusionXLFamily, "lora_config", lambda s, n, c: c)
        old = RealFillModule(TinyStableDiffusionXLInpainting())
    last = old.base_model.text_encoder.config.num_hidden_layers - 1
    idle = [
        name
        for name, _ in old.named_parameters()
        if re.match(rf"base_model\.text_encoder\..*layers\.{last}\..*lora_", name)
    ]
    assert idle  # the old layout: an adapter on the first encoder's last layer
    with torch.no_grad():
        for name, param in old.named_parameters():
            if "lora_B" in name:
                param.normal_()
    old.save_lora(tmp_path / "lora")
    new = RealFillModule(TinyStableDiffusionXLInpainting())
    new.base_model.load_lora(tmp_path / "lora")
    trained = dict(old.named_parameters())
    loaded = {n: p for n, p in new.named_parameters() if "lora_B" in n}
    assert loaded and all(torch.equal(p, trained[n]) for n, p in loaded.items())
    assert not set(idle) & set(loaded)
