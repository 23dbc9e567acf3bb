"""`hole_denoising_error`: a deterministic, sampling-free measure of what a model knows about
the true content of a hole."""

from PIL import Image

from realfill.evaluation.denoising import hole_denoising_error
from realfill.modules import LoraSettings


def hole_scene(textured_image) -> tuple[Image.Image, Image.Image, Image.Image]:
    truth = textured_image(96, 64, seed=3)
    mask = Image.new("L", truth.size, 0)
    mask.paste(255, (24, 16, 56, 48))
    target = truth.copy()
    target.paste((255, 255, 255), mask=mask)
    return target, mask, truth


def test_the_same_seed_gives_the_same_error_and_the_hole_content_matters(
    tiny_base, make_textured_image
):
    target, mask, truth = hole_scene(make_textured_image)
    error = hole_denoising_error(tiny_base.eval(), target, mask, truth, "a photo", 64, draws=4)
    again = hole_denoising_error(tiny_base, target, mask, truth, "a photo", 64, draws=4)
    assert error == again
    other_truth = make_textured_image(96, 64, seed=4)
    other = hole_denoising_error(tiny_base, target, mask, other_truth, "a photo", 64, draws=4)
    assert other != error


def test_fresh_adapters_leave_the_error_of_the_base_model(tiny_base, make_textured_image):
    target, mask, truth = hole_scene(make_textured_image)
    base = hole_denoising_error(tiny_base.eval(), target, mask, truth, "a photo", 64, draws=4)
    tiny_base.add_lora(LoraSettings(rank=4, dropout=0.0))
    adapted = hole_denoising_error(tiny_base.eval(), target, mask, truth, "a photo", 64, draws=4)
    assert adapted == base
