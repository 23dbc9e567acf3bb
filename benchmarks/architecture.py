"""Full-size Stable Diffusion 2 inpainting built from its published configs, random weights.

Same shapes, parameter counts and FLOPs as `stabilityai/stable-diffusion-2-inpainting`, with no
download: what the speed benchmark measures. The values below are those of the checkpoint's
`unet/`, `vae/`, `text_encoder/` and `scheduler/` config files.
"""

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from realfill.modules.stable_diffusion import StableDiffusionComponents, StableDiffusionFamily
from realfill.modules.tiny import byte_level_tokenizer

SD2_UNET = {
    "sample_size": 64,
    "in_channels": 9,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
SD2_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD2_TEXT_ENCODER = {  # OpenCLIP ViT-H/14's text tower, penultimate layer (23 of 24)
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
    "layer_norm_eps": 1e-5,
}
SD2_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


class RandomStableDiffusion2Inpainting(StableDiffusionFamily):
    """SD 2 inpainting at full size with random weights (`seed`), built in memory."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        tokenizer = byte_level_tokenizer(SD2_TEXT_ENCODER["max_position_embeddings"])
        super().__init__(
            StableDiffusionComponents(
                vae=AutoencoderKL(**SD2_VAE),
                unet=UNet2DConditionModel(**SD2_UNET),
                text_encoder=CLIPTextModel(CLIPTextConfig(**SD2_TEXT_ENCODER)),
                tokenizer=tokenizer,
                scheduler=DDPMScheduler(**SD2_SCHEDULER),
            )
        )
