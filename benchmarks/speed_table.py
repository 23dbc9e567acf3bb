"""The speed results as the markdown table the README quotes, and their files."""

from pathlib import Path

from realfill.io import write_json, write_text


def markdown(results: dict) -> str:
    """The results as the table the README quotes (rows for what was measured)."""

    def memory(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f} GiB"

    def training_row(label: str, key: str) -> list[str]:
        if key not in results:
            return []
        r = results[key]
        return [
            f"| {label}, batch {r['batch_size']} | {r['seconds_per_step']:.3f} s/step "
            f"({r['samples_per_second']:.1f} samples/s, VAE encode {r['vae_encode_seconds']:.3f} s)"
            f", MFU {100 * r['mfu']:.1f}%, {memory(r['peak_memory_gib'])}, "
            f"first step {r['first_step_seconds']:.1f} s |"
        ]

    def sampling_row(label: str, key: str) -> list[str]:
        if key not in results:
            return []
        r = results[key]
        return [
            f"| {label}, batch {r['batch_size']}, {r.get('size', 'target')} px, "
            f"{r['denoising_steps']} DDPM steps | "
            f"{r['candidates_per_minute']:.1f} candidates/min (64 in "
            f"{r['seconds_for_64_candidates']:.1f} s), MFU {100 * r['mfu']:.1f}%, "
            f"{memory(r['peak_memory_gib'])}, first call {r['first_call_seconds']:.1f} s |"
        ]

    def compiled_rows(kind: str) -> list[str]:
        """Rows of the torch.compile variants of `kind` ("training" or "sampling"), e.g.
        `training_compiled_whole` or `sampling_compiled_whole_reduce_overhead`."""
        prefix = f"{kind}_compiled_"
        row = training_row if kind == "training" else sampling_row
        compiled = "UNet ({}), VAE encoder, text encoder" if kind == "training" else "UNet ({})"
        variants = [key.removeprefix(prefix) for key in results if key.startswith(prefix)]
        return [
            line
            for variant in variants
            for line in row(
                f"{kind}, torch.compile: " + compiled.format(variant.replace("_", " ")),
                prefix + variant,
            )
        ]

    lines = [
        f"# Speed: {results['device']} ({results['date']}, {results['scale']} scale)",
        "",
        results["note"],
        "",
        *(
            [f"torch._inductor.config for the compiled variants: {results['inductor_config']}.", ""]
            if "inductor_config" in results
            else []
        ),
        f"Measured {results['dtype']} matmul peak: {results['matmul_peak_tflops']:.1f} TFLOP/s. "
        + (
            f"FLOPs counted by torch.utils.flop_counter: training "
            f"{results['training']['tflop_per_step']:.3g} TFLOP per step."
            if "training" in results
            else "Sampling only."
        ),
        "",
        "| measurement | value |",
        "|---|---|",
        *training_row("training, eager", "training"),
        *training_row("training, channels-last", "training_channels_last"),
        *compiled_rows("training"),
        *training_row("24 GB profile: gradient checkpointing", "training_24gb"),
        *sampling_row("sampling (LoRA merged into the weights)", "sampling"),
        *sampling_row("sampling, LoRA adapters unmerged", "sampling_unmerged"),
        *sampling_row("sampling, channels-last", "sampling_channels_last"),
        *sampling_row("sampling, larger batch", "sampling_large_batch"),
        *compiled_rows("sampling"),
    ]
    for key, value in list(results.items()):
        if isinstance(value, dict) and "profile" in value:
            r = results[key]["profile"]
            busy = (
                ""
                if r["device_busy_seconds"] is None
                else f", device busy {r['device_busy_seconds']:.3f} s "
                f"({100 * r['device_busy_fraction']:.0f}%)"
            )
            lines.append(
                f"| {key} profile ({r['table']}) | wall {r['wall_seconds']:.3f} s per call{busy}, "
                f"{r['operator_calls']} aten calls |"
            )
    if "data" in results:
        consumed = (
            f" vs {results['training']['samples_per_second']:.1f} consumed"
            if "training" in results
            else ""
        )
        lines.append(
            f"| data pipeline | {results['data']['samples_per_second']:.0f} samples/s "
            f"delivered{consumed} |"
        )
    if "end_to_end_minutes" in results:
        lines.append(
            f"| 2000 bare training steps + sampling 64 candidates (no ranking, no Lightning; "
            f"benchmarks/end_to_end.py times the whole job) | "
            f"{results['end_to_end_minutes']:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def file_stem(results: dict) -> str:
    """`<device>-<date>`: the results files' name."""
    return f"{results['device'].replace(' ', '_').replace('/', '_')}-{results['date']}"


def save(results: dict, out: Path) -> None:
    """Write the results so far (JSON and table), atomically: a later measurement that runs out
    of time leaves the earlier ones on disk."""
    stem = file_stem(results)
    write_json(results, out / f"{stem}.json")
    write_text(markdown(results), out / f"{stem}.md")
