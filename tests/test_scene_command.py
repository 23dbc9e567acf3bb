"""`python -m realfill.scene`: a scene folder from photos, that a fit reads as it is."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realfill.data.scene import load_scene
from realfill.scene import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def photos(tmp_path, make_textured_image) -> dict[str, Path]:
    """A target photo, two references (one a JPEG, one a PNG) and an RGBA target."""
    paths = {name: tmp_path / "photos" / name for name in ("t.jpg", "a.jpg", "b.png", "rgba.png")}
    paths["t.jpg"].parent.mkdir()
    make_textured_image(80, 64, seed=0).save(paths["t.jpg"], quality=95)
    make_textured_image(80, 64, seed=1).save(paths["a.jpg"], quality=95)
    make_textured_image(72, 64, seed=2).save(paths["b.png"])
    rgba = make_textured_image(80, 64, seed=3).convert("RGBA")
    rgba.paste((0, 0, 0, 0), (20, 16, 50, 40))
    rgba.save(paths["rgba.png"])
    return paths


def make(photos: dict[str, Path], out: Path, *how: str, target: str = "t.jpg") -> Path:
    refs = [str(photos["a.jpg"]), str(photos["b.png"])]
    return main(["--target", str(photos[target]), "--refs", *refs, "--out", str(out), *how])


@pytest.mark.parametrize(
    ("how", "target", "size", "missing"),
    [
        (("--outpaint", "1.5"), "t.jpg", (120, 96), 120 * 96 - 80 * 64),
        (("--box", "0.25,0.25,0.75,0.75"), "t.jpg", (80, 64), 40 * 32),
        ((), "rgba.png", (80, 64), 30 * 24),
    ],
)
def test_a_scene_made_from_photos_loads_as_a_fit_reads_it(
    tmp_path, photos, how, target, size, missing
):
    scene = load_scene(make(photos, tmp_path / "scene", *how, target=target))
    assert scene.target.size == size
    assert int(np.asarray(scene.mask).sum()) == 255 * missing
    assert [path.name for path in scene.reference_paths] == ["00_a.jpg", "01_b.png"]
    assert scene.reference_paths[0].read_bytes() == photos["a.jpg"].read_bytes()
    assert Image.open(tmp_path / "scene" / "preview.png").height == 256


def test_a_mask_image_says_what_is_missing(tmp_path, photos):
    mask = Image.new("L", (80, 64), 0)
    mask.paste(255, (0, 0, 10, 64))
    mask.save(tmp_path / "mask.png")
    scene = load_scene(make(photos, tmp_path / "scene", "--mask", str(tmp_path / "mask.png")))
    assert int(np.asarray(scene.mask).sum()) == 255 * 10 * 64


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (("--box", "0,0,200,10"), "--box 0,0,200,10: not a box inside the 80x64 target"),
        (("--outpaint", "0.5"), "--outpaint 0.5: a factor must be above 1"),
        (("--outpaint", "0,0,900,0"), "t.jpg: 980x64 has an aspect ratio of 15.3:1"),
        (("--box", "1,1,5,5", "--outpaint", "2"), "give one way to say what is missing"),
        ((), "t.jpg: has no transparency; give --outpaint, --box or --mask"),
        (("--mask", "MASK"), "mask.png: mask is 40x40 (WxH) but the target"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, photos, capsys, how, expected):
    Image.new("L", (40, 40), 255).save(tmp_path / "mask.png")
    how = tuple(str(tmp_path / "mask.png") if arg == "MASK" else arg for arg in how)
    with pytest.raises(SystemExit) as exit_info:
        make(photos, tmp_path / "scene", *how)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and expected in error
    assert not (tmp_path / "scene").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png", "photos"]


def test_an_unreadable_reference_is_named(tmp_path, photos, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SystemExit):
        main(["--target", str(photos["t.jpg"]), "--refs", str(tmp_path / "broken.jpg"),
              "--out", str(tmp_path / "scene"), "--box", "1,1,9,9"])  # fmt: skip
    assert "broken.jpg: not a readable image" in capsys.readouterr().err


def test_a_folder_of_the_users_files_is_never_replaced(tmp_path, photos, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"keep me")
    with pytest.raises(SystemExit) as exit_info:
        make(photos, out, "--box", "1,1,9,9")
    assert exit_info.value.code == 2
    assert "holiday.jpg" in capsys.readouterr().err
    assert (out / "holiday.jpg").read_bytes() == b"keep me"


def test_an_earlier_scene_is_replaced(tmp_path, photos):
    make(photos, tmp_path / "scene", "--box", "1,1,9,9")
    scene = load_scene(make(photos, tmp_path / "scene", "--outpaint", "0,0,16,0"))
    assert scene.target.size == (96, 64)


def test_the_tiny_fit_completes_a_made_outpainting_scene(tmp_path, photos, fit_tiny):
    scene = make(photos, tmp_path / "scene", "--outpaint", "0,0,16,0")
    preset = {
        "trainer": {"max_steps": 2, "callbacks": [{"class_path": "realfill.callbacks.SaveLoRA"}]},
        "selection": None,
        "data": {"batch_size": 2},
    }
    run_dir = fit_tiny("run", preset, extra=(f"--data.scene_dir={scene}",))
    assert (run_dir / "lora").is_dir()
