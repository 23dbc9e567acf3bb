"""Scene loading: layout, validation errors, and conversion of every image mode to RGB."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realfill.data import Scene, load_image, load_mask, load_scene
from realfill.data.scene import to_rgb
from realfill.errors import RealFillError, SceneError


def pixels(image: Image.Image) -> np.ndarray:
    """Image values as a numpy array."""
    return np.asarray(image)


def test_loads_valid_scene(make_scene) -> None:
    root = make_scene(num_references=3)
    (root / "ref" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "ref" / "README").write_text("not an image")
    (root / "ref" / "notes.txt").write_text("not an image")
    Image.new("RGB", (30, 20), (1, 2, 3)).save(root / "ref" / "zz_upper.JPEG")

    scene = load_scene(root)

    assert isinstance(scene, Scene)
    assert scene.name == "scene" and scene.root == root
    assert [p.name for p in scene.reference_paths] == [
        "ref00.jpg",
        "ref01.png",
        "ref02.jpg",
        "zz_upper.JPEG",
    ]
    assert all(image.mode == "RGB" for image in scene.references)
    assert scene.references[1].size == (36, 52)
    assert scene.target.mode == "RGB" and scene.target.size == (56, 40)
    assert scene.mask.mode == "L" and scene.mask.size == scene.target.size
    assert set(np.unique(pixels(scene.mask))) == {0, 255}
    assert scene.ground_truth is None
    assert scene.target_path == root / "target" / "target.png"
    assert scene.mask_path == root / "target" / "mask.png"


def test_loads_ground_truth(make_scene, default_target) -> None:
    scene = load_scene(make_scene(ground_truth=255 - default_target))
    assert scene.ground_truth is not None and scene.ground_truth.mode == "RGB"
    np.testing.assert_array_equal(pixels(scene.ground_truth), 255 - default_target)
    np.testing.assert_array_equal(pixels(scene.target), default_target)


def test_more_than_max_references_warns_but_loads(make_scene) -> None:
    root = make_scene(num_references=6)
    with pytest.warns(UserWarning, match=r"6 reference images, more than 5"):
        scene = load_scene(root)
    assert len(scene.references) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_scene(root, max_references=6).references) == 6


def test_real_scene_loads(real_scene_dir: Path) -> None:
    scene = load_scene(real_scene_dir)
    assert len(scene.references) == 3
    assert all(image.mode == "RGB" for image in [*scene.references, scene.target])
    assert scene.mask.mode == "L" and scene.mask.size == scene.target.size
    hole = pixels(scene.mask) == 255
    assert set(np.unique(pixels(scene.mask))) == {0, 255}
    assert 0.0 < hole.mean() < 1.0


# ---- bad input: one-line SceneError naming the offending path -------------------------------


def _truncate(path: Path) -> None:
    """Cut a file to half its bytes, leaving a valid header but missing pixel data."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _save_big_png(path: Path) -> None:
    """Write a noise PNG large enough that truncating it leaves the header intact."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)


def _missing_folder(root: Path) -> Path:
    return root.parent / "does-not-exist"


def _file_not_folder(root: Path) -> Path:
    path = root.parent / "file.txt"
    path.write_text("x")
    return path


def _no_ref_folder(root: Path) -> Path:
    for file in (root / "ref").iterdir():
        file.unlink()
    (root / "ref").rmdir()
    return root / "ref"


def _no_references(root: Path) -> Path:
    for file in (root / "ref").iterdir():
        file.unlink()
    (root / "ref" / ".DS_Store").write_bytes(b"junk")
    (root / "ref" / "README.md").write_text("hi")
    return root / "ref"


def _no_target(root: Path) -> Path:
    (root / "target" / "target.png").unlink()
    return root / "target" / "target.png"


def _no_mask(root: Path) -> Path:
    (root / "target" / "mask.png").unlink()
    return root / "target" / "mask.png"


def _target_not_an_image(root: Path) -> Path:
    (root / "target" / "target.png").write_text("this is not a png\nat all\n")
    return root / "target" / "target.png"


def _truncated_target(root: Path) -> Path:
    path = root / "target" / "target.png"
    _truncate(path)
    return path


def _truncated_reference(root: Path) -> Path:
    path = root / "ref" / "ref00.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
    _truncate(path)
    return path


def _empty_reference(root: Path) -> Path:
    path = root / "ref" / "ref01.png"
    path.write_bytes(b"")
    return path


def _reference_broken_link(root: Path) -> Path:
    path = root / "ref" / "ref02.jpg"
    path.symlink_to(root / "no-such-photo.jpg")
    return path


def _reference_folder(root: Path) -> Path:
    path = root / "ref" / "ref02.jpg"
    path.mkdir()
    return path


def _mask_wrong_size(root: Path) -> Path:
    path = root / "target" / "mask.png"
    Image.new("L", (20, 10), 255).save(path)
    return path


def _mask_all_black(root: Path) -> Path:
    path = root / "target" / "mask.png"
    Image.new("L", (56, 40), 100).save(path)  # grey below the threshold: still "known"
    return path


def _mask_all_white(root: Path) -> Path:
    path = root / "target" / "mask.png"
    Image.new("RGB", (56, 40), (255, 255, 255)).save(path)
    return path


def _gt_wrong_size(root: Path) -> Path:
    path = root / "target" / "gt.png"
    Image.new("RGB", (40, 56)).save(path)
    return path


def _gt_truncated(root: Path) -> Path:
    path = root / "target" / "gt.png"
    _save_big_png(path)
    _truncate(path)
    return path


def _target_too_thin(root: Path) -> Path:
    Image.new("RGB", (360, 40)).save(root / "target" / "target.png")
    Image.new("L", (360, 40), 255).save(root / "target" / "mask.png")
    return root / "target" / "target.png"


def _reference_too_thin(root: Path) -> Path:
    path = root / "ref" / "ref02.jpg"
    Image.new("RGB", (20, 200)).save(path)
    return path


def _fifo_at(relative: str) -> Callable[[Path], Path]:
    def replace_by_fifo(root: Path) -> Path:
        path = root / relative
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        return path

    return replace_by_fifo


BAD_SCENES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing scene folder": (_missing_folder, "does not exist"),
    "scene is a file": (_file_not_folder, "not a folder"),
    "no ref folder": (_no_ref_folder, "missing reference folder"),
    "no reference images": (_no_references, "no reference images"),
    "no target": (_no_target, "missing target"),
    "no mask": (_no_mask, "missing mask"),
    "target not an image": (_target_not_an_image, "not a readable image"),
    "truncated target": (_truncated_target, "not a readable image"),
    "truncated reference": (_truncated_reference, "not a readable image"),
    "empty reference": (_empty_reference, "not a readable image"),
    "reference a broken link": (_reference_broken_link, "not an image file (a broken link)"),
    "reference a folder": (_reference_folder, "not an image file (a folder)"),
    "mask wrong size": (_mask_wrong_size, "20x10"),
    "mask all black": (_mask_all_black, "nothing to fill"),
    "mask all white": (_mask_all_white, "whole target"),
    "gt wrong size": (_gt_wrong_size, "40x56"),
    "gt truncated": (_gt_truncated, "not a readable image"),
    "target too long and thin": (_target_too_thin, "aspect ratio of 9.0:1, more than the 8:1"),
    "reference too long and thin": (_reference_too_thin, "aspect ratio of 10.0:1"),
    "gt a FIFO": (_fifo_at("target/gt.png"), "ground truth is not a regular file (a FIFO"),
    "target a FIFO": (_fifo_at("target/target.png"), "target image is not a regular file (a FIFO"),
    "mask a FIFO": (_fifo_at("target/mask.png"), "is not a regular file (a FIFO"),
    "reference a FIFO": (_fifo_at("ref/ref02.jpg"), "not an image file (a FIFO"),
}


@pytest.mark.parametrize("case", BAD_SCENES, ids=list(BAD_SCENES))
def test_bad_scene_raises_one_line_scene_error(make_scene, case: str) -> None:
    root = make_scene()
    break_scene, expected = BAD_SCENES[case]
    offending = break_scene(root)
    scene_dir = offending if break_scene in (_missing_folder, _file_not_folder) else root
    with pytest.raises(SceneError) as raised:
        load_scene(scene_dir)
    message = str(raised.value)
    assert isinstance(raised.value, RealFillError)
    assert str(offending) in message
    assert expected in message
    assert "\n" not in message and "\r" not in message


def test_mask_size_error_names_both_sizes(make_scene) -> None:
    root = make_scene()
    _mask_wrong_size(root)
    with pytest.raises(SceneError, match=r"20x10 .* 56x40"):
        load_scene(root)


# ---- conversions to RGB ---------------------------------------------------------------------


def _save_and_load(tmp_path: Path, image: Image.Image, name: str = "image.png") -> Image.Image:
    path = tmp_path / name
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == image.size
    return loaded


def test_grayscale_becomes_gray_rgb(tmp_path: Path) -> None:
    loaded = _save_and_load(tmp_path, Image.fromarray(np.array([[0, 77, 255]], np.uint8)))
    np.testing.assert_array_equal(pixels(loaded)[0], [[0, 0, 0], [77, 77, 77], [255, 255, 255]])


def test_grayscale_alpha_composited_over_black(tmp_path: Path) -> None:
    la = np.array([[[200, 255], [200, 0], [200, 128]]], np.uint8)
    loaded = pixels(_save_and_load(tmp_path, Image.fromarray(la, "LA")))
    assert loaded[0, 0].tolist() == [200, 200, 200]
    assert loaded[0, 1].tolist() == [0, 0, 0]
    np.testing.assert_allclose(loaded[0, 2], 100, atol=1)


def test_rgba_composited_over_black(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    loaded = pixels(_save_and_load(tmp_path, Image.fromarray(rgba, "RGBA"))).astype(int)
    assert loaded[0, 0].tolist() == [200, 100, 50]
    assert loaded[0, 1].tolist() == [0, 0, 0]
    np.testing.assert_allclose(loaded[0, 2], [100, 50, 25], atol=1)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette_image = Image.new("P", (3, 1))
    palette_image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    palette_image.putdata([0, 1, 2])
    opaque = pixels(_save_and_load(tmp_path, palette_image, "opaque.png"))
    assert opaque[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    palette_image.info["transparency"] = 1
    clear = pixels(_save_and_load(tmp_path, palette_image, "clear.png"))
    assert clear[0].tolist() == [[255, 0, 0], [0, 0, 0], [0, 0, 255]]


def test_one_bit(tmp_path: Path) -> None:
    bits = Image.new("1", (2, 1))
    bits.putpixel((1, 0), 1)
    loaded = pixels(_save_and_load(tmp_path, bits))
    assert loaded[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_sixteen_bit_png_is_rescaled_not_clipped(tmp_path: Path) -> None:
    image = Image.fromarray(np.array([[0, 32768, 65535, 257]], np.uint16))
    assert image.mode == "I;16"
    loaded = pixels(_save_and_load(tmp_path, image)).astype(int)
    assert loaded[0, :, 0].tolist()[0] == 0
    assert abs(loaded[0, 1, 0] - 128) <= 1
    assert loaded[0, 2].tolist() == [255, 255, 255]
    assert loaded[0, 3, 0] == 1


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_wide_grayscale_modes(mode: str) -> None:
    values = np.array([[0, 32768, 65535]])
    if mode == "I;16B":
        image = Image.frombytes(mode, (3, 1), values.astype(">u2").tobytes())
    else:
        image = Image.fromarray(values.astype(np.int32))
    assert image.mode == mode
    converted = pixels(to_rgb(image)).astype(int)
    assert converted[0, :, 1].tolist() in ([0, 128, 255], [0, 127, 255])


def test_cmyk() -> None:
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putpixel((1, 0), (0, 255, 255, 0))
    converted = pixels(to_rgb(cmyk))
    assert converted[0].tolist() == [[255, 255, 255], [255, 0, 0]]


def test_exif_orientation_6_rotates_clockwise(tmp_path: Path) -> None:
    stored = Image.new("RGB", (4, 2))
    stored.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.png"
    stored.save(path, exif=exif)

    loaded = load_image(path)

    assert loaded.size == (2, 4)
    assert loaded.getpixel((1, 0)) == (255, 0, 0)  # stored top-left shows at top-right
    assert sum(pixels(loaded).reshape(-1, 3).sum(axis=1) > 0) == 1


def test_exif_orientation_applies_to_mask(tmp_path: Path) -> None:
    stored = Image.new("L", (4, 2))
    stored.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "mask.png", exif=exif)
    mask = load_mask(tmp_path / "mask.png")
    assert mask.size == (2, 4) and mask.getpixel((1, 0)) == 255


def test_mask_threshold_and_alpha(tmp_path: Path) -> None:
    rgba = np.array(
        [[[255, 255, 255, 255], [255, 255, 255, 0], [128, 128, 128, 255], [127, 127, 127, 255]]],
        np.uint8,
    )
    Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
    mask = load_mask(tmp_path / "mask.png")
    assert mask.mode == "L"
    assert pixels(mask)[0].tolist() == [255, 0, 255, 0]


def test_truncated_file_fails_in_load_image(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _save_big_png(path)
    _truncate(path)
    with pytest.raises(SceneError, match="not a readable image") as raised:
        load_image(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
