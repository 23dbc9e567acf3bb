"""The run dir's layout, named once: what a fit, `realfill.sample`, the baselines, the
evaluation and the W&B report write and read.

    <run dir>/
      config.yaml                     the resolved config (`realfill.sample` takes it)
      lora/                           the LoRA (`SaveLoRA`)
      completions/                    a selection (`CompleteTarget`, `realfill.sample`):
        candidates/seedNNNNN.png        every candidate, composited onto the target
        ranked/rankNN_seedNNNNN.png     the top `keep`
        scores.json                     seed, score, rank and file of each candidate
        contact_sheet.png               the scene, then the candidates in rank order
      samples/stepNNNNNN.png          progress sheets (`PeriodicSampling`)
"""

import re
from pathlib import Path

CONFIG_FILENAME = "config.yaml"
"""The resolved config a fit writes into its run dir."""
LORA_DIRNAME = "lora"
"""The LoRA's folder under the run dir."""
COMPLETIONS_DIRNAME = "completions"
"""A selection's folder under the run dir (and under a method's results folder, per scene)."""
SAMPLES_DIRNAME = "samples"
"""The progress sheets' folder under the run dir."""
CANDIDATES_DIRNAME = "candidates"
"""Every candidate, in a selection's folder."""
RANKED_DIRNAME = "ranked"
"""The top-ranked candidates, in a selection's folder."""
SCORES_FILENAME = "scores.json"
"""The candidates' records, in a selection's folder."""
CONTACT_SHEET_FILENAME = "contact_sheet.png"
"""The ranked contact sheet, in a selection's folder."""
SELECTION_PATTERNS = (
    f"{CANDIDATES_DIRNAME}/seed*.png",
    f"{RANKED_DIRNAME}/rank*_seed*.png",
    SCORES_FILENAME,
    CONTACT_SHEET_FILENAME,
)
"""What a selection's folder held before realfill wrote manifests, at every depth: such a
folder holding anything else is not replaced (see `realfill.io.check_replaceable`)."""


def run_config(run_dir: Path) -> Path:
    """The resolved config of the run in `run_dir`."""
    return Path(run_dir) / CONFIG_FILENAME


def candidate_file(seed: int) -> str:
    """A candidate's file, relative to its selection's folder (as scores.json records it)."""
    return f"{CANDIDATES_DIRNAME}/seed{seed:05d}.png"


def ranked_file(rank: int, seed: int) -> str:
    """A top-ranked candidate's copy, relative to its selection's folder."""
    return f"{RANKED_DIRNAME}/rank{rank:02d}_seed{seed:05d}.png"


RANKED_NAME = re.compile(r"rank(\d+)_seed(\d+)\.png")
"""The name of a top-ranked candidate's copy (see `ranked_file`): its rank and seed."""


def sheet_file(step: int) -> str:
    """The progress sheet of an optimizer step, relative to its folder."""
    return f"step{step:06d}.png"


SHEET_PATTERNS = ("step[0-9][0-9][0-9][0-9][0-9][0-9]*.png",)
"""What the progress sheets' folder held before manifests (see `sheet_file`)."""
