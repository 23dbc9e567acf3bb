"""The model summary a fit prints at its start: one line, what matters for LoRA training."""

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)


class ParameterSummary(ModelSummary):
    """The base model and how many of its parameters train (the LoRA's), in one line.

    Lightning's default table shows a FLOPs column and total that read 0 unless the module
    has an example input (it does not: its inputs are a scene's batches), and a count of
    modules in train mode that says nothing about a frozen base model with adapters."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs,
    ) -> None:
        types = dict(summary_data).get("Type", [])
        print(
            f"Model: {', '.join(types) or 'no submodule'}, "
            f"{get_human_readable_count(total_parameters)} parameters, "
            f"{get_human_readable_count(trainable_parameters)} trained (LoRA), "
            f"{get_formatted_model_size(model_size)} MB"
        )
