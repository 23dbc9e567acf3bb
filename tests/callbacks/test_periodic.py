"""PeriodicSampling: fixed seeds every N steps, without changing what training does."""

from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.torch import load_file

from realfill.callbacks import PeriodicSampling, periodic
from realfill.callbacks.periodic import sample_captions
from realfill.errors import RealFillError
from realfill.selection.contact_sheet import contact_sheet

SHORT_FIT = {
    "trainer": {"max_steps": 4, "callbacks": [{"class_path": "realfill.callbacks.SaveLoRA"}]},
    "selection": None,
    "data": {"batch_size": 2},
}
PERIODIC = {
    "trainer": {
        "callbacks+": [
            {
                "class_path": "realfill.callbacks.PeriodicSampling",
                "init_args": {"every_n_steps": 2, "seeds": [5, 9], "num_inference_steps": 2},
            }
        ]
    }
}


def test_a_step_is_due_once_on_multiples_of_every_n_steps():
    callback = PeriodicSampling(every_n_steps=3)
    assert [step for step in range(10) if callback.is_due(step)] == [3, 6, 9]
    callback._last_sampled_step = 6  # gradient accumulation: step 6 seen again
    assert not callback.is_due(6)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="every_n_steps"):
        PeriodicSampling(every_n_steps=0)
    with pytest.raises(ValueError, match="seed"):
        PeriodicSampling(seeds=[])


def test_captions_name_step_and_seed():
    assert sample_captions(250, [0, 7]) == ["step 250 seed 0", "step 250 seed 7"]


def test_sheets_every_n_steps_and_training_unchanged(fit_tiny, monkeypatch):
    plain = fit_tiny("plain", SHORT_FIT)
    sampled_images = []

    def recording_sheet(images, captions):
        sampled_images.append([np.asarray(image) for image in images])
        return contact_sheet(images, captions)

    monkeypatch.setattr(periodic, "contact_sheet", recording_sheet)
    sampled = fit_tiny("sampled", SHORT_FIT, PERIODIC)

    sheets = sorted(p.name for p in (sampled / "samples").glob("*.png"))
    assert sheets == ["step000002.png", "step000004.png"]
    first, last = sampled_images
    assert len(first) == len(last) == 2  # one per seed
    assert not any(np.array_equal(a, b) for a, b in zip(first, last, strict=True))  # trained on
    assert not (plain / "samples").exists()

    with_sampling = load_file(sampled / "lora" / "pytorch_lora_weights.safetensors")
    without = load_file(plain / "lora" / "pytorch_lora_weights.safetensors")
    assert with_sampling.keys() == without.keys()
    assert all(with_sampling[k].equal(without[k]) for k in without)


def test_a_fit_from_step_zero_removes_an_earlier_fits_sheets_and_a_resumed_one_keeps_them(
    tmp_path,
):
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "step000250.png").write_text("")
    callback = PeriodicSampling()
    resumed = SimpleNamespace(is_global_zero=True, global_step=250, default_root_dir=tmp_path)
    callback.on_train_start(resumed, None)
    assert [p.name for p in samples.iterdir()] == ["step000250.png"]
    fresh = SimpleNamespace(is_global_zero=True, global_step=0, default_root_dir=tmp_path)
    callback.on_train_start(fresh, None)
    assert [p.name for p in samples.iterdir()] == [".realfill-manifest.json"]
    callback.on_train_start(fresh, None)  # no sheets, or no folder: nothing to do


def test_a_users_file_among_the_sheets_is_refused_before_training(fit_tiny, tmp_path, capsys):
    """Issue 33: a fit from step 0 removed every stepNNNNNN.png of samples/ and wrote over
    any of that name; now a file realfill did not write there stops the fit first."""
    mine = tmp_path / "run" / "samples" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    periodic = {"trainer": {"callbacks": [{"class_path": "realfill.callbacks.PeriodicSampling"}]}}
    with pytest.raises(SystemExit) as exit_info:
        fit_tiny("run", periodic, extra=("--trainer.max_steps=1",))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"realfill: error: {mine}: realfill did not write it")
    assert mine.read_text() == "mine"


def test_a_resumed_fit_does_not_sample_its_first_step_again():
    """With gradient accumulation the first micro-batches of a fit resumed at step 250 still
    see step 250, whose sheet was drawn before the checkpoint was saved."""
    callback = PeriodicSampling(every_n_steps=250)
    resumed = SimpleNamespace(is_global_zero=False, global_step=250)
    callback.on_train_start(resumed, None)
    assert not callback.is_due(250)
    assert callback.is_due(500)


@pytest.mark.parametrize(
    ("blocked", "settings", "expected"),
    [
        ("samples", {}, "{run}/samples is not a folder"),
        ("", {"resolution": 3}, "resolution=3 must be a multiple of 4 and at least 8"),
    ],
    ids=["sheet-folder-a-file", "resolution"],
)
def test_what_would_fail_at_the_first_sampling_step_is_refused_at_setup(
    tmp_path, tiny_base, blocked, settings, expected
):
    if blocked:
        (tmp_path / blocked).write_text("a file")
    trainer = SimpleNamespace(default_root_dir=tmp_path)
    with pytest.raises(RealFillError, match="^PeriodicSampling: ") as error:
        PeriodicSampling(**settings).setup(trainer, SimpleNamespace(base_model=tiny_base), "fit")
    assert expected.format(run=tmp_path) in str(error.value)
