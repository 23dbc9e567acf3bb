"""The end-of-fit completion step: sample candidates, composite them onto the target, save."""

from pathlib import Path

import lightning as L

from realfill.callbacks.compositing import composite
from realfill.callbacks.contact_sheet import contact_sheet
from realfill.io import save_image, staged_directory
from realfill.modules.realfill import RealFillModule


class CompleteTarget(L.Callback):
    """Samples `num_samples` completions of the scene's target when fit ends.

    Each raw sample is composited onto the target with a feathered mask, so pixels away from the
    mask are the target's own bytes, and written to `<run dir>/<dirname>/` with a contact sheet.
    """

    def __init__(
        self,
        num_samples: int = 16,
        seed: int = 0,
        num_inference_steps: int = 200,
        scheduler: str = "DDPMScheduler",
        guidance_scale: float = 1.0,
        batch_size: int = 4,
        resolution: int | None = None,
        feather_dilation: int = 1,
        feather_blur: int = 1,
        dirname: str = "completions",
    ) -> None:
        """
        Args:
            num_samples: How many candidates to sample.
            seed: Candidate i is drawn with seed `seed + i`; the seed alone reproduces it.
            num_inference_steps: Denoising steps per candidate.
            scheduler: diffusers scheduler class used for sampling (DDPM as in the paper).
            guidance_scale: Classifier-free guidance; 1 turns it off, as in the paper.
            batch_size: Candidates sampled together.
            resolution: Shorter side of the sampling size; default the data's training
                resolution.
            feather_dilation: Pixels the mask is dilated by before compositing.
            feather_blur: Box-blur radius of the compositing mask's edge.
            dirname: Folder under the run dir for the completions.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples
        self.seed = seed
        self.num_inference_steps = num_inference_steps
        self.scheduler = scheduler
        self.guidance_scale = guidance_scale
        self.batch_size = batch_size
        self.resolution = resolution
        self.feather_dilation = feather_dilation
        self.feather_blur = feather_blur
        self.dirname = dirname

    def on_fit_end(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        scene = datamodule.scene
        seeds = [self.seed + i for i in range(self.num_samples)]
        with trainer.precision_plugin.forward_context():
            raw = pl_module.generate(
                scene.target,
                scene.mask,
                seeds,
                resolution=self.resolution or datamodule.resolution,
                num_inference_steps=self.num_inference_steps,
                scheduler=self.scheduler,
                guidance_scale=self.guidance_scale,
                batch_size=self.batch_size,
            )
        completions = [
            composite(image, scene.target, scene.mask, self.feather_dilation, self.feather_blur)
            for image in raw
        ]
        out = Path(trainer.default_root_dir) / self.dirname
        with staged_directory(out) as staging:
            for seed, image in zip(seeds, completions, strict=True):
                save_image(image, staging / f"seed{seed:05d}.png")
            sheet = contact_sheet(completions, [f"seed {seed}" for seed in seeds])
            save_image(sheet, staging / "contact_sheet.png")
        print(f"Completions: {out} ({len(completions)} candidates, contact_sheet.png)")
