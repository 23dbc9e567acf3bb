import lightning as L
import pytest
import torch

from realfill.modules import LoraSettings, RealFillModule, TinyStableDiffusionInpainting


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
    }


def loss_and_grads(module: RealFillModule, batch: dict) -> tuple[torch.Tensor, dict]:
    module.zero_grad()
    torch.manual_seed(123)
    loss = module.masked_loss(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}
    return loss.detach(), grads


@pytest.fixture
def module(tiny_base) -> RealFillModule:
    torch.manual_seed(0)
    module = RealFillModule(tiny_base, prompt_dropout=0.5)
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


def test_text_encoder_lora_can_be_switched_off(tiny_base):
    module = RealFillModule(tiny_base, lora=LoraSettings(rank=4, train_text_encoder=False))
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


def test_mixed_precision_stores_frozen_weights_in_bf16_and_lora_in_fp32(module):
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False)
    module.trainer = trainer
    module.setup("fit")
    for name, param in module.named_parameters():
        expected = torch.float32 if param.requires_grad else torch.bfloat16
        assert param.dtype == expected, name
    with trainer.precision_plugin.forward_context():
        loss = module.masked_loss(target_batch())
    loss.backward()
    assert torch.isfinite(loss)
