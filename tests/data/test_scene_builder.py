"""Making a scene from photos: outpainting borders, boxes, alpha masks and the preview."""

import numpy as np
import pytest
from PIL import Image

from realfill.data.scene_builder import (
    HOLE_COLOUR,
    Margins,
    alpha_mask,
    box_mask,
    outpaint_canvas,
    parse_box,
    parse_outpaint,
    preview_image,
)
from realfill.errors import SceneError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1.5", Margins(20, 15, 20, 15)),
        ("2", Margins(40, 30, 40, 30)),
        ("16:9", Margins(13, 0, 14, 0)),
        ("1:1", Margins(0, 10, 0, 10)),
        ("0,0,32,0", Margins(0, 0, 32, 0)),
    ],
)
def test_outpaint_specs_give_the_border_to_add(spec, expected):
    assert parse_outpaint(spec, 80, 60) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0.5", "a factor must be above 1"),
        ("4:3", "has it already"),
        ("0:3", "must be > 0"),
        ("0,0,0,0", "adds no pixel"),
        ("wide", "expected a factor (1.5), an aspect ratio (16:9) or pixels per side"),
    ],
)
def test_an_outpaint_spec_that_grows_nothing_is_refused(spec, message):
    with pytest.raises(SceneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_outpaint(spec, 80, 60)


def test_the_outpainting_canvas_keeps_the_photo_and_masks_only_the_new_border(
    make_textured_image,
):
    photo = make_textured_image(80, 60, seed=0)
    canvas, mask = outpaint_canvas(photo, Margins(5, 0, 32, 7))
    assert canvas.size == mask.size == (117, 67)
    assert np.array_equal(np.asarray(canvas)[0:60, 5:85], np.asarray(photo))
    mask_values = np.asarray(mask)
    assert (mask_values[0:60, 5:85] == 0).all()
    assert mask_values.sum() == 255 * (117 * 67 - 80 * 60)


@pytest.mark.parametrize(
    ("spec", "box"),
    [("10,5,40,30", (10, 5, 40, 30)), ("0.25,0.5,0.75,1", (20, 30, 60, 60))],
)
def test_a_box_is_pixels_or_fractions(spec, box):
    assert parse_box(spec, 80, 60) == box
    mask = np.asarray(box_mask((80, 60), box))
    assert mask[box[1] : box[3], box[0] : box[2]].min() == 255
    assert mask.sum() == 255 * (box[2] - box[0]) * (box[3] - box[1])


@pytest.mark.parametrize("spec", ["10,5,90,30", "40,5,10,30", "1,2,3", "a,b,c,d"])
def test_a_box_outside_the_target_or_malformed_is_refused(spec):
    with pytest.raises(SceneError, match=f"--box {spec}: "):
        parse_box(spec, 80, 60)


def test_transparency_is_what_is_missing(tmp_path):
    image = Image.new("RGBA", (40, 30), (200, 10, 10, 255))
    image.paste((0, 0, 0, 0), (5, 5, 15, 20))
    image.save(tmp_path / "t.png")
    mask = np.asarray(alpha_mask(tmp_path / "t.png"))
    assert mask[5:20, 5:15].min() == 255
    assert mask.sum() == 255 * 10 * 15


def test_an_opaque_target_without_another_mask_is_refused(tmp_path, make_textured_image):
    make_textured_image(40, 30, seed=0).save(tmp_path / "t.png")
    with pytest.raises(SceneError, match="t.png: has no transparency; give --outpaint"):
        alpha_mask(tmp_path / "t.png")


def test_the_preview_paints_the_hole_magenta_beside_the_references(make_textured_image):
    target = make_textured_image(80, 60, seed=0)
    mask = box_mask(target.size, (20, 20, 40, 40))
    preview = preview_image(target, mask, [make_textured_image(60, 60, seed=1)])
    assert preview.height == 256 and preview.width == round(80 * 256 / 60) + 256
    assert preview.getpixel((30 * 256 // 60, 30 * 256 // 60)) == HOLE_COLOUR
