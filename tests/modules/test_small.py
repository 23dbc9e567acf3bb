"""The small base model: `realfill.pretrain` writes a plain diffusers folder that the stock SD
plug-in loads, and the shipped one is what `realfill.modules.small` describes."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from realfill.data.pretraining import BUNDLED_PHOTOS, EXCLUDED
from realfill.io import check_replaceable
from realfill.modules import StableDiffusionInpainting
from realfill.modules.small import SmallModelConfig, build_small_components
from realfill.pretrain import MODEL_FOLDER_ENTRIES, legacy_model_folder
from realfill.pretrain import main as pretrain

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "small-inpainting"
QUICK = [
    "--autoencoder_steps=2",
    "--low_resolution_steps=1",
    "--full_resolution_steps=1",
    "--warmup_steps=1",
    "--batch_size=2",
]


def test_the_shipped_model_loads_in_the_stock_plugin_as_described():
    base = StableDiffusionInpainting(str(SHIPPED))
    built = build_small_components(SmallModelConfig())
    assert base.unet.config.in_channels == 9
    for key in ("block_out_channels", "down_block_types", "attention_head_dim"):
        shipped, described = base.unet.config[key], built.unet.config[key]
        assert shipped == described or list(shipped) == list(described)  # JSON gives lists
    assert list(base.vae.config.block_out_channels) == list(built.vae.config.block_out_channels)
    assert base.vae_scale_factor == 4 and base.size_multiple == 16
    assert base.sampling_multiple == 8
    assert all(p.dtype == torch.float32 for p in base.parameters())
    record = json.loads((SHIPPED / "pretraining.json").read_text())
    assert record["latent_scaling_factor"] == pytest.approx(base.vae.config.scaling_factor)
    assert sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file()) < 20 * 2**20


def test_pretraining_never_sees_the_evaluation_pair():
    assert "stereo_motorcycle" in EXCLUDED
    assert not set(BUNDLED_PHOTOS) & set(EXCLUDED)


@pytest.mark.parametrize(
    "arithmetic",
    [(), ("--unet_precision=bf16-mixed", "--channels_last=true")],
    ids=["fp32", "bf16-channels-last"],
)
def test_pretrain_writes_a_folder_the_plugin_loads(tmp_path, arithmetic):
    out = tmp_path / "model"
    pretrain([f"--out={out}", *QUICK, *arithmetic])
    base = StableDiffusionInpainting(str(out))
    image = torch.zeros(1, 3, 32, 32)
    assert base.encode_images(image).shape == (1, 4, 8, 8)
    assert json.loads((out / "pretraining.json").read_text())["settings"]["batch_size"] == 2


def test_pretrain_refuses_a_folder_of_other_files_in_one_line(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        pretrain([f"--out={out}", *QUICK])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "notes.txt" in error
    assert (out / "notes.txt").read_text() == "keep me"


def test_pretrain_refuses_settings_that_train_nothing_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pretrain([f"--out={tmp_path / 'model'}", "--resolution=100"])
    assert exit_info.value.code == 2
    assert "--resolution must be a multiple of 32" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_pretrain_refuses_a_users_file_inside_a_component_folder(tmp_path, capsys):
    """Defect 1 for `realfill.pretrain --out`: a copy of the shipped model (no manifest) is
    replaced whole, but not once the user has put a file of their own inside it."""
    out = tmp_path / "model"
    shutil.copytree(SHIPPED, out)
    check_replaceable(out, MODEL_FOLDER_ENTRIES, legacy_model_folder)
    (out / "vae" / "holiday.jpg").write_bytes(b"photo")
    with pytest.raises(SystemExit) as exit_info:
        pretrain([f"--out={out}", *QUICK])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"realfill: error: {out}/vae/holiday.jpg: realfill did not write it; choose another "
        f"output folder ({out} would be replaced)"
    )
