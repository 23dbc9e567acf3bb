"""The real loaders' refusals: a checkpoint that is damaged, incomplete, not a pipeline or not
an inpainting model is refused in one line naming the folder and the problem."""

import importlib
import json
import re
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from realfill.errors import ConfigError, ModelLoadError
from realfill.fit import main
from realfill.modules import (
    FluxFillInpainting,
    StableDiffusionXLInpainting,
    TinyFluxFillInpainting,
    TinyStableDiffusionInpainting,
    TinyStableDiffusionXLInpainting,
)
from realfill.modules.loading import PIPELINE_INDEX

REPO = Path(__file__).resolve().parents[2]
USAGE_ERROR = 2
"""The commands' exit status for a user-facing error."""


def refusal(loader, arguments: dict) -> str:
    """The one-line message `loader` refuses `arguments` with."""
    with pytest.raises(ModelLoadError) as error:
        loader(**arguments)
    message = str(error.value)
    assert "\n" not in message
    return message


def cannot_load(folder: Path, reason: str) -> str:
    """The start of the message for a local folder that could not be loaded, up to `reason`."""
    return f"cannot load the base model {str(folder)!r} from the local folder ({reason}"


def component_class(folder: Path, name: str) -> type:
    """The class model_index.json names for a component."""
    library, class_name = json.loads((folder / PIPELINE_INDEX).read_text())[name]
    return getattr(importlib.import_module(library), class_name)


def save_latents_only_denoiser(checkpoint: Path, name: str) -> int:
    """Replace the denoiser `name` by one that reads the noisy latents only (as many channels
    as it predicts): a text-to-image UNet, a Flux transformer that is not a Fill model.
    Returns its input channels."""
    denoiser = component_class(checkpoint, name)
    config = denoiser.load_config(checkpoint / name)
    denoiser.from_config({**config, "in_channels": config["out_channels"]}).save_pretrained(
        checkpoint / name
    )
    return config["out_channels"]


def test_a_denoiser_without_the_inpainting_inputs_is_refused(loader, saved_checkpoint):
    latents_only = save_latents_only_denoiser(saved_checkpoint.checkpoint, loader.denoiser_name)
    message = refusal(loader, saved_checkpoint.arguments(loader))
    fit = f"the base model {str(saved_checkpoint.checkpoint)!r} does not fit: "
    assert re.match(
        rf"{re.escape(fit)}the (UNet has|transformer reads) {latents_only} (input )?channels; "
        r"(an inpainting|a Fill) model \(\d+",
        message,
    ), message


def test_a_missing_component_folder_is_refused_by_name(loader, saved_checkpoint):
    folder = saved_checkpoint.checkpoint
    for path in (folder / loader.denoiser_name).iterdir():
        path.unlink()
    (folder / loader.denoiser_name).rmdir()
    message = refusal(loader, saved_checkpoint.arguments(loader))
    assert message.startswith(
        cannot_load(folder, f"no {loader.denoiser_name}/ folder; the checkpoint needs ")
    )


@pytest.mark.parametrize(
    ("component", "damage", "reason"),
    [
        ("denoiser", "truncated", "incomplete metadata, file not fully covered"),
        ("text_encoder", "overwritten", "header too large"),
    ],
)
def test_a_damaged_safetensors_file_is_refused_naming_its_folder(
    loader, saved_checkpoint, component, damage, reason
):
    name = loader.denoiser_name if component == "denoiser" else component
    (weights,) = (saved_checkpoint.checkpoint / name).glob("*.safetensors")
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else b"\xff" * len(whole))
    message = refusal(loader, saved_checkpoint.arguments(loader))
    damaged = f"{name}/: damaged safetensors file: Error while deserializing header: {reason}"
    assert message.startswith(cannot_load(saved_checkpoint.checkpoint, damaged))


@pytest.mark.parametrize("given", ["component", "empty", "file"])
def test_a_path_that_is_not_a_pipeline_folder_is_refused(loader, saved_checkpoint, given):
    """One component's folder (e.g. vae/: diffusers would load a UNet from its weights), an
    empty folder, a file."""
    path = {
        "component": saved_checkpoint.checkpoint / "vae",
        "empty": saved_checkpoint.checkpoint.parent / "empty",
        "file": saved_checkpoint.checkpoint / PIPELINE_INDEX,
    }[given]
    if given == "empty":
        path.mkdir()
    arguments = {**saved_checkpoint.arguments(loader), "pretrained_model_name_or_path": str(path)}
    message = refusal(loader, arguments)
    if given == "file":
        expected = f"cannot load the base model {str(path)!r} from the local file (a file, not"
    else:
        expected = cannot_load(path, f"not a diffusers pipeline folder: no {PIPELINE_INDEX}")
    assert message.startswith(expected)


@pytest.mark.parametrize("process", ["in-process", pytest.param("own", marks=pytest.mark.slow)])
def test_a_refusal_ends_the_fit_command_in_one_line_and_exit_2(
    saved_twin, tmp_path, run_command, capsys, process
):
    """A text-to-image UNet given to `realfill.fit` as the base model: exit code 2, the error's
    one line is the last thing written (after Lightning's seed notice), no traceback."""
    saved = saved_twin(TinyStableDiffusionInpainting).copy(tmp_path)
    channels = save_latents_only_denoiser(saved.checkpoint, "unet")
    arguments = [
        "--config",
        str(REPO / "configs" / "tiny.yaml"),
        "--model.base_model=realfill.modules.StableDiffusionInpainting",
        f"--model.base_model.init_args.pretrained_model_name_or_path={saved.checkpoint}",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]
    if process == "own":
        result = run_command("realfill.fit", *arguments)
        status, stderr = result.returncode, result.stderr
    else:
        with pytest.raises(SystemExit) as exit_info:
            main(arguments)
        status, stderr = exit_info.value.code, capsys.readouterr().err
    assert status == USAGE_ERROR and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        f"realfill: error: the base model {str(saved.checkpoint)!r} does not fit: the UNet has "
        f"{channels} input channels; an inpainting model (9 channels: latents, mask, "
        "masked-image latents) is needed"
    )


# ---- SDXL -----------------------------------------------------------------------------------


def test_sdxl_takes_the_vae_of_vae_name_or_path_and_keeps_it_in_fp32(saved_twin, tmp_path):
    saved = saved_twin(TinyStableDiffusionXLInpainting).copy(tmp_path)
    torch.manual_seed(1)
    replacement = AutoencoderKL.from_config(AutoencoderKL.load_config(saved.vae))
    replacement.save_pretrained(saved.vae)
    base = StableDiffusionXLInpainting(**saved.arguments(StableDiffusionXLInpainting))
    loaded = base.vae.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in replacement.state_dict().items())
    base.cast_frozen(torch.bfloat16)
    assert base.vae.dtype == torch.float32 and base.unet.dtype == torch.bfloat16


# ---- Flux Fill ------------------------------------------------------------------------------


def test_flux_loads_its_weights_in_load_dtype(saved_twin):
    arguments = saved_twin(TinyFluxFillInpainting).arguments(FluxFillInpainting)
    base = FluxFillInpainting(**{**arguments, "load_dtype": "bfloat16"})
    assert base.transformer.dtype == torch.bfloat16 and base.text_encoder_2.dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="load_dtype must name a torch dtype, got 'bf16'"):
        FluxFillInpainting(**{**arguments, "load_dtype": "bf16"})
