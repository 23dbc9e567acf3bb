"""Sampling runs as a stock pipeline would: in the compute dtype, with the LoRA folded in."""

import pytest
import torch
from peft.tuners.lora import LoraLayer
from PIL import Image, ImageChops

from realfill.modules import CompileSettings, RealFillModule, TinyFluxFillInpainting
from realfill.modules.sampling import candidate_generators, sampling_canvas

RESOLUTION = 32


def adapted_module(base, **switches) -> RealFillModule:
    """A RealFillModule whose adapters change the denoiser's output (B is not zero)."""
    module = RealFillModule(base, **switches)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    return module


def scene() -> tuple[Image.Image, Image.Image]:
    target = Image.new("RGB", (40, 32), (200, 30, 90))
    mask = Image.new("L", (40, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    return target, mask


def sample(module: RealFillModule, merge_adapters: bool, **sampling) -> Image.Image:
    (image,) = module.generate(
        *scene(),
        [0],
        resolution=RESOLUTION,
        num_inference_steps=2,
        merge_adapters=merge_adapters,
        progress=False,
        **sampling,
    )
    return image


def lora_calls(module: RealFillModule) -> list[torch.dtype]:
    """Records the weight dtype of each of the denoiser's LoRA modules as it runs."""
    calls = []
    for name, child in module.base_model.denoiser.named_modules():
        if name.endswith("lora_A.default"):
            child.register_forward_pre_hook(lambda m, _: calls.append(m.weight.dtype))
    return calls


def denoiser_inputs(module: RealFillModule) -> list[tuple[torch.dtype, bool]]:
    """Records the dtype of the denoiser's input, and whether autocast is on, at every call."""
    seen = []

    def record(denoiser, args, kwargs):
        sample = args[0] if args else next(iter(kwargs.values()))
        seen.append((sample.dtype, torch.is_autocast_enabled("cpu")))

    module.base_model.denoiser.register_forward_pre_hook(record, with_kwargs=True)
    return seen


def predictions(module: RealFillModule) -> list[torch.Tensor]:
    """Records the denoiser's output at every call."""
    outputs = []

    def record(denoiser, args, output):
        outputs.append((output[0] if isinstance(output, tuple) else output.sample).clone())

    module.base_model.denoiser.register_forward_hook(record)
    return outputs


@pytest.mark.parametrize("merge_adapters", [True, False], ids=["merged", "adapters"])
def test_bf16_sampling_runs_in_bf16_without_autocast_and_restores_the_fp32_adapters(
    base, merge_adapters
):
    module = adapted_module(base)
    module.base_model.cast_frozen(torch.bfloat16)
    adapters = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    seen = denoiser_inputs(module)
    calls = lora_calls(module)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as Lightning's bf16-mixed wraps it
        image = sample(module, merge_adapters)
    assert seen and set(seen) == {(torch.bfloat16, False)}
    if merge_adapters:
        assert not calls
    else:
        assert calls and set(calls) == {torch.bfloat16}
    assert image.size[1] == RESOLUTION
    for name, param in module.named_parameters():
        if name in adapters:
            assert param.requires_grad, name
            assert param.dtype == torch.float32, name
            assert torch.equal(param, adapters[name]), name


@pytest.mark.parametrize("merge_adapters", [True, False], ids=["merged", "adapters"])
def test_float32_sampling_of_a_bf16_model_runs_in_fp32_and_puts_every_weight_back(
    base, merge_adapters
):
    """sampling_dtype="float32" after a bf16-mixed fit: the denoiser and its adapters run in
    fp32 (as the reference samples), and the frozen bf16 weights and fp32 adapters are what
    they were after."""
    module = adapted_module(base)
    module.base_model.cast_frozen(torch.bfloat16)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    seen = denoiser_inputs(module)
    calls = lora_calls(module)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        wide = sample(module, merge_adapters, sampling_dtype="float32")
    assert seen and set(seen) == {(torch.float32, False)}
    assert set(calls) == (set() if merge_adapters else {torch.float32})
    for name, param in module.named_parameters():
        assert param.dtype == before[name].dtype and torch.equal(param, before[name]), name
    assert ImageChops.difference(wide, sample(module, merge_adapters)).getbbox() is not None


def test_merged_adapters_predict_what_the_adapters_predict_and_leave_the_model_as_it_was(base):
    module = adapted_module(base)
    before = {n: (p.detach().clone(), p.requires_grad) for n, p in module.named_parameters()}
    outputs = predictions(module)
    calls = lora_calls(module)
    weights = {
        layer: layer.get_base_layer().weight
        for layer in module.base_model.denoiser.modules()
        if isinstance(layer, LoraLayer)
    }
    addresses = {layer: weight.data_ptr() for layer, weight in weights.items()}
    seen = []
    hook = module.base_model.denoiser.register_forward_pre_hook(
        lambda *_: seen.append({layer: w.data_ptr() for layer, w in weights.items()})
    )
    sample(module, merge_adapters=True)
    hook.remove()
    assert not calls
    assert seen and all(step == addresses for step in seen)  # CUDA graphs hold weights by address
    merged = outputs.pop(0)
    outputs.clear()
    sample(module, merge_adapters=False)
    assert calls
    torch.testing.assert_close(outputs[0], merged, rtol=1e-4, atol=1e-5)
    outputs.clear()
    module.base_model.denoiser.disable_adapters()
    sample(module, merge_adapters=False)
    assert not torch.allclose(outputs[0], merged, atol=1e-3)  # the adapters matter
    module.base_model.denoiser.enable_adapters()
    for name, param in module.named_parameters():
        value, requires_grad = before[name]
        assert torch.equal(param, value), name
        assert param.requires_grad == requires_grad, name


def test_sampling_runs_eagerly_after_compilation_for_training(base):
    module = RealFillModule(base, compile=CompileSettings(denoiser=True, encoders=True))
    module.compile_for_training()
    compiled = {m: m._compiled_call_impl for m in module.modules() if m._compiled_call_impl}
    assert module.base_model.denoiser in compiled and module.base_model.vae.encoder in compiled
    calls = []

    def spy(module):
        return lambda *args, **kwargs: calls.append(type(module).__name__)

    spies = {child: spy(child) for child in compiled}
    for child, call in spies.items():
        child._compiled_call_impl = call
    sample(module, merge_adapters=True)
    assert not calls
    for child, call in spies.items():  # compiled again for the next training step
        assert child._compiled_call_impl is call


@pytest.mark.slow
def test_compiled_sampling_matches_eager_and_compiles_once(base):
    module = adapted_module(
        base,
        compile=CompileSettings(
            denoiser=True,
            sampling=True,
            backend="aot_eager",  # the wiring; inductor only adds codegen time
        ),
    )
    module.compile_for_training()
    denoiser = module.base_model.denoiser
    training_call = denoiser._compiled_call_impl
    eager_image = sample(module, merge_adapters=True, compile_denoiser=False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled_image = sample(module, merge_adapters=True)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs >= 1
    assert sample(module, merge_adapters=True) == compiled_image
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # kept, not redone
    assert denoiser._compiled_call_impl is training_call  # training's compilation is back
    difference = ImageChops.difference(compiled_image, eager_image).getextrema()
    assert max(high for _, high in difference) <= 2


def test_the_holes_content_never_reaches_a_resized_conditioning(base):
    """Sampled at another size than the target's (resolution 48 rescales 40x32), two targets
    that differ only inside the hole give identical samples: resampling must not smear the
    hole's pixels into the known ones the model is conditioned on."""
    module = RealFillModule(base)
    target, mask = scene()
    other = target.copy()
    other.paste((255, 255, 255), (8, 8, 24, 24))
    samples = [
        module.generate(
            image,
            mask,
            [0],
            resolution=48,
            num_inference_steps=2,
            progress=False,
        )[0]
        for image in (target, other)
    ]
    assert samples[0].size != target.size
    assert ImageChops.difference(*samples).getbbox() is None


def test_a_phone_photo_is_sampled_at_its_own_aspect_on_8_px_multiples():
    """A 4:3 photo at SD's 512 px is 683x512 (4:3 within a pixel), padded to 688x512 for the
    pipeline, not stretched to 704x512 (64 px multiples) or to 680x512."""
    assert sampling_canvas(4032, 3024, 512, 8) == ((683, 512), (688, 512))
    assert sampling_canvas(3024, 4032, 512, 8) == ((512, 683), (512, 688))
    assert sampling_canvas(768, 512, 512, 8) == ((768, 512), (768, 512))
    (width, height), _ = sampling_canvas(4032, 3024, 512, 8)
    assert abs(width - height * 4 / 3) < 1


def test_a_4_3_target_comes_back_at_4_3_with_its_padding_cropped(base):
    target = Image.new("RGB", (64, 48), (200, 30, 90))
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (40, 8, 64, 40))
    (image,) = RealFillModule(base).generate(
        target, mask, [0], resolution=32, num_inference_steps=1, progress=False
    )
    assert image.size == (43, 32)
    size, canvas = sampling_canvas(64, 48, 32, base.sampling_multiple)
    assert canvas[0] > size[0] and canvas[0] % base.sampling_multiple == 0


def test_flux_fill_samples_with_its_training_guidance_unless_told_otherwise():
    base = TinyFluxFillInpainting(seed=0, guidance=12.0)
    seen = []
    base.transformer.register_forward_pre_hook(
        lambda _, args, kwargs: seen.append(kwargs["guidance"].unique().tolist()), with_kwargs=True
    )
    module = RealFillModule(base)
    for guidance_scale in (None, 3.0):
        module.generate(
            *scene(),
            [0],
            resolution=RESOLUTION,
            num_inference_steps=1,
            guidance_scale=guidance_scale,
            progress=False,
        )
    assert seen == [[12.0], [3.0]]


def test_no_seeds_sample_nothing(base):
    """With fewer candidates than processes, some processes get no seeds to sample."""
    module = RealFillModule(base)
    assert module.generate(*scene(), [], resolution=RESOLUTION, progress=False) == []


def test_each_candidate_draws_from_its_own_seed_on_the_sampling_device():
    generators = candidate_generators([3, 4], torch.device("cpu"))
    assert [g.device.type for g in generators] == ["cpu", "cpu"]
    for seed, generator in zip([3, 4], generators, strict=True):
        expected = torch.randn(8, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(torch.randn(8, generator=generator), expected)


@pytest.mark.slow
def test_compiled_sampling_pads_a_partial_last_batch_instead_of_compiling_again(
    monkeypatch, capsys
):
    from realfill.modules import TinyStableDiffusionInpainting
    from realfill.modules import sampling as sampling_module

    monkeypatch.setattr(sampling_module, "sampling_batch_size", lambda requested, device: requested)
    module = RealFillModule(
        TinyStableDiffusionInpainting(seed=0),
        compile=CompileSettings(sampling=True, backend="eager"),
    )

    def graphs_for(seeds: list[int]) -> tuple[int, int]:
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        images = module.generate(
            *scene(),
            seeds,
            resolution=RESOLUTION,
            num_inference_steps=2,
            batch_size=2,
        )
        return len(images), torch._dynamo.utils.counters["stats"]["unique_graphs"]

    _, graphs_of_one_batch = graphs_for([0, 1])
    # seed 2 is sampled beside a repeat that is dropped, by the graphs of the first batch
    assert graphs_for([0, 1, 2]) == (3, graphs_of_one_batch)

    drawn = []  # fewer seeds than a batch (a rank's share of a few): padded too
    generators = sampling_module.candidate_generators
    monkeypatch.setattr(
        sampling_module,
        "candidate_generators",
        lambda seeds, device: drawn.append(list(seeds)) or generators(seeds, device),
    )
    assert graphs_for([5]) == (1, graphs_of_one_batch)
    assert drawn == [[5, 5]]

    bars = capsys.readouterr().err  # the bar says a first batch may compile, until it is done
    assert "the first batch compiles" in bars
    final = bars.rstrip().split("\r")[-1]
    assert "1/1" in final and "compiles" not in final
