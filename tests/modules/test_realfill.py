from types import SimpleNamespace

import lightning as L
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from realfill.errors import ConfigError
from realfill.modules import (
    CompileSettings,
    LoraSettings,
    OptimizationSettings,
    RealFillModule,
    TinyStableDiffusionInpainting,
)
from realfill.modules.realfill import check_compile_mode


def target_batch(resolution: int = 32) -> dict[str, torch.Tensor]:
    """A batch of one reference and one target whose right half is its hole."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(2, 3, resolution, resolution, generator=generator) * 2 - 1
    known = torch.ones(2, 1, resolution, resolution)
    known[1, :, :, resolution // 2 :] = 0.0
    training_mask = torch.zeros(2, 1, resolution, resolution)
    training_mask[0, :, 8:20, 8:20] = 1.0
    training_mask[1] = 1.0 - known[1]
    pixels[1] *= known[1]
    return {
        "pixels": pixels,
        "training_mask": training_mask,
        "known_mask": known,
        "is_target": torch.tensor([False, True]),
        "original_size": torch.tensor([[3 * resolution, 2 * resolution], [resolution, resolution]]),
        "crop_top_left": torch.tensor([[5, 2], [0, 0]]),
    }


def loss_and_grads(module: RealFillModule, batch: dict) -> tuple[torch.Tensor, dict]:
    module.zero_grad()
    torch.manual_seed(123)
    loss = module.masked_loss(batch)
    loss.backward()
    grads = {
        n: p.grad.clone() if p.grad is not None else torch.zeros_like(p)
        for n, p in module.named_parameters()
        if p.requires_grad
    }
    return loss.detach(), grads


@pytest.fixture
def module(base) -> RealFillModule:
    torch.manual_seed(0)
    module = RealFillModule(base, prompt_dropout=0.5)
    with torch.no_grad():  # LoRA B starts at zero; make the adapters matter
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    return module


def test_the_targets_hole_never_reaches_the_loss_or_the_gradients(module):
    batch = target_batch()
    loss, grads = loss_and_grads(module, batch)
    assert loss.item() > 0 and any(g.abs().sum() > 0 for g in grads.values())

    changed = {k: v.clone() for k, v in batch.items()}
    hole = changed["known_mask"][1:2].expand(1, 3, -1, -1) == 0
    changed["pixels"][1:2][hole] = torch.rand(int(hole.sum())) * 2 - 1
    changed_loss, changed_grads = loss_and_grads(module, changed)

    assert torch.equal(loss, changed_loss)
    for name, grad in grads.items():
        assert torch.equal(grad, changed_grads[name]), name


def test_the_models_prediction_over_the_hole_never_reaches_the_loss(module, monkeypatch):
    """Blanking the hole's pixels is not enough: the denoiser still predicts latents there, and
    only the loss weight keeps them out (the hole is the right half of the target, sample 1)."""
    batch = target_batch()
    loss, grads = loss_and_grads(module, batch)
    denoise = module.base_model.denoise

    def perturbed(columns: slice):
        def denoise_then_perturb(*args, **kwargs):
            prediction = denoise(*args, **kwargs)
            offset = torch.zeros_like(prediction)
            offset[1, :, :, columns] = 3.0
            return prediction + offset

        return denoise_then_perturb

    width = module.base_model.encode_images(batch["pixels"][:1]).shape[-1]
    monkeypatch.setattr(module.base_model, "denoise", perturbed(slice(width // 2, None)))
    hole_loss, hole_grads = loss_and_grads(module, batch)
    assert torch.equal(loss, hole_loss)
    for name, grad in grads.items():
        assert torch.equal(grad, hole_grads[name]), name
    monkeypatch.setattr(module.base_model, "denoise", perturbed(slice(0, width // 2 - 1)))
    known_loss, _ = loss_and_grads(module, batch)
    assert not torch.equal(loss, known_loss)  # the same change over known pixels counts


def test_known_pixels_do_change_the_loss(module):
    batch = target_batch()
    loss, _ = loss_and_grads(module, batch)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["pixels"][1, :, :, :4] = -changed["pixels"][1, :, :, :4]
    changed_loss, _ = loss_and_grads(module, changed)
    assert not torch.equal(loss, changed_loss)


def test_only_lora_weights_train_and_only_they_are_checkpointed(module):
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(n.startswith("base_model.text_encoder") for n in trainable)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == set(trainable)


def test_text_encoder_lora_can_be_switched_off(base):
    module = RealFillModule(base, lora=LoraSettings(rank=4, train_text_encoder=False))
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and not any("text_encoder" in n for n in trainable)
    assert len(module.configure_optimizers()["optimizer"].param_groups) == 1


def test_optimizer_has_one_learning_rate_per_component_and_warms_up(module):
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2e-6, 4e-7])
    for _ in range(200):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2e-4, 4e-5])


def test_v_prediction_models_regress_the_velocity():
    base = TinyStableDiffusionInpainting(prediction_type="v_prediction")
    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    torch.manual_seed(0)
    _, timesteps, target = base.add_noise(latents, noise)
    expected = base.scheduler.get_velocity(latents, noise, timesteps)
    assert torch.allclose(target, expected) and not torch.allclose(target, noise)


def test_bf16_latents_are_noised_in_fp32(base):
    """In bf16 the scheduler's small noise levels round (SD's first two to 0): the clean
    latents would reach the denoiser unchanged, with the noise as its target."""
    latents = torch.randn(512, 4, 2, 2).bfloat16()
    noise = torch.randn(512, 4, 2, 2)
    torch.manual_seed(0)
    noisy, timesteps, target = base.add_noise(latents, noise)
    torch.manual_seed(0)
    noisy_fp32, timesteps_fp32, target_fp32 = base.add_noise(latents.float(), noise)
    assert torch.equal(timesteps, timesteps_fp32)
    assert noisy.dtype == torch.bfloat16 and torch.equal(noisy, noisy_fp32.bfloat16())
    assert target.dtype == torch.float32 and torch.equal(target, target_fp32)


def test_mixed_precision_stores_frozen_weights_in_bf16_and_lora_in_fp32(module):
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False)
    module.trainer = trainer
    module.setup("fit")
    for name, param in module.named_parameters():
        if param.requires_grad:
            assert param.dtype == torch.float32, name
        elif ".vae." not in name:  # a plug-in may keep its VAE in fp32 (SDXL)
            assert param.dtype == torch.bfloat16, name
    vae_autocast = []
    module.base_model.vae.encoder.register_forward_pre_hook(
        lambda vae, args: vae_autocast.append(torch.is_autocast_enabled("cpu"))
    )
    with trainer.precision_plugin.forward_context():
        loss = module.masked_loss(target_batch())
    loss.backward()
    assert torch.isfinite(loss)
    # the frozen VAE runs in its storage dtype, not in autocast's fp32 GroupNorms
    assert vae_autocast and not any(vae_autocast)


def test_gradient_checkpointing_keeps_the_loss_and_the_gradients(module):
    loss, grads = loss_and_grads(module, target_batch())
    module.base_model.enable_gradient_checkpointing()
    assert module.base_model.denoiser.is_gradient_checkpointing
    checkpointed_loss, checkpointed_grads = loss_and_grads(module, target_batch())
    torch.testing.assert_close(checkpointed_loss, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, msg=name)


@pytest.mark.parametrize("regional", [False, True], ids=["whole", "regional"])
@pytest.mark.slow
def test_compiled_model_gives_the_same_loss_and_gradients(tmp_path, regional):
    """Compiled training gives eager's loss and gradients. (Compiled with gradient checkpointing,
    the 24 GB preset's fit runs in test_fit.py.)"""
    torch.manual_seed(0)
    module = RealFillModule(
        TinyStableDiffusionInpainting(seed=0),
        compile=CompileSettings(
            denoiser=True,
            regional=regional,
            encoders=True,
            backend="aot_eager",  # the switch's wiring; inductor only adds codegen time
        ),
        optimization=OptimizationSettings(
            denoiser_learning_rate=0.0, text_encoder_learning_rate=0.0, weight_decay=0.0
        ),
    )
    batch = target_batch()
    eager, eager_grads = loss_and_grads(module, batch)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    loader = DataLoader([batch], batch_size=None)  # the one batch, as it is
    trainer.fit(module, train_dataloaders=loader)
    denoiser = module.base_model.denoiser
    compiled_blocks = [m for m in denoiser.modules() if m._compiled_call_impl is not None]
    if regional:
        assert compiled_blocks and denoiser not in compiled_blocks
        assert {type(m).__name__ for m in compiled_blocks} == set(denoiser._repeated_blocks)
    else:
        assert compiled_blocks == [denoiser]
    base = module.base_model
    assert base.vae.encoder._compiled_call_impl is not None
    assert base.text_encoder._compiled_call_impl is not None
    compiled, grads = loss_and_grads(module, batch)
    torch.testing.assert_close(compiled, eager)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)


@pytest.mark.slow
def test_every_compiled_graph_has_static_shapes_though_training_and_sampling_differ():
    """Training (batch 2, 32x32 latents' worth) and sampling (batch 1, a 40x32 target) run the
    same denoiser code; compiled one after the other, neither may fall back to a dynamic-shape
    graph (symbolic sizes: a slower compile and generic kernels)."""
    symbolic = []

    def recording_backend(graph: torch.fx.GraphModule, example_inputs: list) -> object:
        sizes = [
            size
            for value in example_inputs
            for size in (value.shape if isinstance(value, torch.Tensor) else [value])
        ]
        symbolic.append(any(isinstance(size, torch.SymInt) for size in sizes))
        return graph.forward

    settings = CompileSettings(denoiser=True, sampling=True, backend=recording_backend)
    module = RealFillModule(TinyStableDiffusionInpainting(seed=0), compile=settings)
    module.compile_for_training()
    loss_and_grads(module, target_batch())
    target = Image.new("RGB", (40, 32), (200, 30, 90))
    mask = Image.new("L", (40, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    module.generate(target, mask, [0], resolution=32, num_inference_steps=2, progress=False)
    assert len(symbolic) >= 2  # training's denoiser and sampling's
    assert not any(symbolic)


def test_eight_bit_adam_without_bitsandbytes_is_one_clear_error(monkeypatch):
    import importlib.util

    from realfill.errors import RealFillError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a),
    )
    with pytest.raises(RealFillError, match="needs bitsandbytes"):
        settings = OptimizationSettings(optimizer="adamw8bit")
        RealFillModule(TinyStableDiffusionInpainting(seed=0), optimization=settings)


def test_compile_switches_reach_torch_compile(monkeypatch):
    calls = []

    def spy(model, **settings):
        calls.append(settings)
        return model

    monkeypatch.setattr(torch, "compile", spy)
    module = RealFillModule(
        TinyStableDiffusionInpainting(seed=0),
        compile=CompileSettings(
            denoiser=True, encoders=True, backend="aot_eager", mode="reduce-overhead"
        ),
    )
    module.compile_for_training()
    # the denoiser, the VAE encoder and the (trained) text encoder, each for static shapes
    assert calls == [{"backend": "aot_eager", "mode": "reduce-overhead", "dynamic": False}] * 3


def test_the_fixed_prompt_is_tokenized_once_not_every_step(plugin, base, monkeypatch):
    from realfill.modules import base_model as base_model_module

    tokenized = []
    real = base_model_module.prompt_tokens

    def counting(tokenizer, prompts, *args, **kwargs):
        tokenized.append(prompts)
        return real(tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(base_model_module, "prompt_tokens", counting)
    module = RealFillModule(base)
    batch = target_batch()
    module.masked_loss(batch)
    calls = len(tokenized)
    assert calls  # each text encoder's tokenizer, once
    module.masked_loss(batch)
    assert len(tokenized) == calls


def test_cuda_graphs_refuse_gradient_accumulation():
    with pytest.raises(ConfigError, match="accumulate_grad_batches=4"):
        check_compile_mode("reduce-overhead", 4)
    check_compile_mode("reduce-overhead", 1)
    check_compile_mode(None, 4)


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_half_precision_lora_weights_are_refused_for_training(module, precision):
    """Lightning casts the whole module under `-true` precisions after `setup`, where AdamW's
    steps round away on bf16 LoRA weights."""
    module.trainer = L.Trainer(accelerator="cpu", precision=precision, logger=False)
    with pytest.raises(ConfigError, match=f"trainer.precision={precision}"):
        module.setup("fit")


def test_each_process_of_a_multi_process_run_draws_its_own_noise(module):
    draws = {}
    for world_size, rank in ((1, 0), (2, 0), (2, 1)):
        torch.manual_seed(0)
        module._trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        module.on_fit_start()
        draws[world_size, rank] = torch.randn(8)
    torch.manual_seed(0)
    assert torch.equal(draws[1, 0], torch.randn(8))  # one process: the seeded stream as it was
    assert not torch.equal(draws[2, 0], draws[2, 1])


def test_channels_last_computes_the_same_loss_and_saves_conv_adapters(fit_tiny, monkeypatch):
    """`channels_last` only changes the layout: the same first loss, and a LoRA file with the
    conv adapters (which safetensors refuses in NHWC) that stock diffusers loads."""
    losses = {}
    training_step = RealFillModule.training_step

    def recording_step(self, batch, batch_idx):
        loss = training_step(self, batch, batch_idx)
        losses.setdefault(self.hparams.channels_last, loss.item())
        return loss

    monkeypatch.setattr(RealFillModule, "training_step", recording_step)
    preset = {
        "trainer": {
            "max_steps": 1,
            "callbacks": [{"class_path": "realfill.callbacks.SaveLoRA"}],
        },
        "selection": None,
        "model": {"lora": {"denoiser_target_modules": ["to_q", "to_v", "conv1", "conv2"]}},
        "data": {"batch_size": 2},
    }
    fit_tiny("contiguous", preset)
    run = fit_tiny("channels-last", preset, extra=("--model.channels_last=true",))
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)

    pipe = TinyStableDiffusionInpainting(seed=0).pipeline()
    pipe.load_lora_weights(run / "lora")
    adapted = [name for name, _ in pipe.unet.named_modules() if name.endswith("conv1.lora_A")]
    assert adapted
