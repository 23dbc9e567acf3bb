"""The settings of sampling and selecting candidates, each documented once here.

`SamplingSettings` (how candidates are drawn and composited) is shared by the end-of-fit
selection (`CompleteTarget`), the progress samples (`PeriodicSampling`) and `realfill.sample`;
`SelectionSettings` adds how many are drawn, ranked and kept. The callbacks are these
dataclasses, so their config keys (`init_args`) and `--help` text come from the fields here.
"""

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

from realfill import layout
from realfill.errors import ConfigError
from realfill.selection.compositing import check_feathering
from realfill.selection.matchers import Matcher, SIFTMatcher

SamplingDtype = Literal["compute", "float32"]
"""What sampling computes in (see `SamplingSettings.sampling_dtype`)."""

KEEP_FRACTION = 4
"""By default one candidate in this many is kept (the paper keeps 16 of 64)."""


@dataclass
class SamplingSettings:
    """How candidates are sampled and composited onto the target. Checked when built (a
    `ConfigError` naming the class and the setting), not after the fit's training."""

    num_inference_steps: int = 200
    """Denoising steps per candidate."""
    scheduler: str | None = None
    """diffusers scheduler class used for sampling; default the base model's (DDPM, as in the
    paper; flow-matching Euler for Flux Fill)."""
    guidance_scale: float | None = None
    """Classifier-free guidance, 1 turning it off as in the paper (the distilled guidance for
    Flux Fill); default the base model's (1; Flux Fill's training guidance)."""
    batch_size: int = 4
    """Candidates sampled together on an accelerator (one at a time on the CPU, where that
    keeps each candidate bit-for-bit reproducible by its seed)."""
    resolution: int | None = None
    """Shorter side of the sampling size; default the data's training resolution."""
    sampling_dtype: SamplingDtype = "compute"
    """Arithmetic of sampling: "compute", the frozen weights' dtype (bf16 after a bf16-mixed
    fit), or "float32", as the reference samples (the weights upcast for the duration). The
    same under 32-true. Measured in the README: how far bf16 moves a candidate."""
    feather_dilation: int = 1
    """Pixels the mask is dilated by before compositing."""
    feather_blur: int = 1
    """Box-blur radius of the compositing mask's edge; at most feather_dilation, so that the
    blur never reaches into the hole."""

    def __post_init__(self) -> None:
        self.check_sampling(type(self).__name__)

    def check_sampling(self, owner: str) -> None:
        """Refuse, with a `ConfigError` naming `owner` and the setting, a sampling or
        compositing setting that cannot work."""
        if self.scheduler is not None:
            from realfill.modules.stable_diffusion import scheduler_class  # loads diffusers

            scheduler_class(self.scheduler)
        counts = {"num_inference_steps": self.num_inference_steps, "batch_size": self.batch_size}
        for name, value in counts.items():
            if value < 1:
                raise ConfigError(f"{owner}: {name} must be >= 1, got {value}")
        if self.resolution is not None and self.resolution < 1:
            raise ConfigError(f"{owner}: resolution must be >= 1 (or null), got {self.resolution}")
        check_feathering(owner, self.feather_dilation, self.feather_blur)

    def generate_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `RealFillModule.generate` these settings give."""
        return {
            "num_inference_steps": self.num_inference_steps,
            "scheduler": self.scheduler,
            "guidance_scale": self.guidance_scale,
            "batch_size": self.batch_size,
            "sampling_dtype": self.sampling_dtype,
        }


@dataclass
class SelectionSettings(SamplingSettings):
    """How many candidates are sampled, how they are ranked, how many are kept and where they
    go, besides how each is sampled."""

    num_samples: int = 16
    """How many candidates to sample."""
    keep: int | None = None
    """How many top-ranked candidates go to ranked/; default a quarter (the paper keeps 16 of
    64)."""
    seed: int = 0
    """Candidate i is drawn with seed `seed + i`; the seed alone reproduces it."""
    matcher: Matcher | None = None
    """Keypoint matcher for ranking (class_path); default realfill.selection.SIFTMatcher,
    which needs no weights."""
    match_margin: int = 0
    """Pixels around the filled region whose matches count too (0: the filled region alone,
    as the paper counts)."""
    dirname: str = layout.COMPLETIONS_DIRNAME
    """Folder under the run dir for the completions."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if self.num_samples < 1:
            raise ConfigError(f"{owner}: num_samples must be >= 1, got {self.num_samples}")
        if self.keep is not None and self.keep < 0:
            raise ConfigError(f"{owner}: keep must be >= 0, got {self.keep}")
        if self.seed < 0 or self.match_margin < 0:
            raise ConfigError(
                f"{owner}: seed and match_margin must be >= 0, got {self.seed} and "
                f"{self.match_margin}"
            )
        self.check_sampling(owner)
        if self.keep is None:
            self.keep = math.ceil(self.num_samples / KEEP_FRACTION)

    @property
    def seeds(self) -> list[int]:
        """The seeds of the candidates, in order."""
        return list(range(self.seed, self.seed + self.num_samples))

    def ranking_matcher(self) -> Matcher:
        """The matcher that ranks candidates, built on first use (SIFT unless one is given)."""
        self.matcher = self.matcher or SIFTMatcher()
        return self.matcher


SELECTION_KEYS = tuple(field.name for field in fields(SelectionSettings))
"""The names of the selection settings, as config keys."""
