"""What `realfill.fit` and `realfill.sample` share: scene checks first, one-line user errors."""

import argparse
import importlib
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

import yaml
from jsonargparse import set_parsing_settings
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf.errors import InterpolationResolutionError

from realfill import layout
from realfill.callbacks.progress import StepProgressBar
from realfill.callbacks.summary import ParameterSummary
from realfill.data import SceneDataModule, load_scene
from realfill.errors import ConfigError, RealFillError
from realfill.io import read_text
from realfill.modules import RealFillModule
from realfill.modules.settings import migrate_flat_settings, moved_settings
from realfill.selection.settings import SELECTION_KEYS, SelectionSettings

Result = TypeVar("Result")
"""What a command returns."""


SELECTION_KEY = "selection"
"""The config section of the end-of-fit selection's settings (`CompleteTarget`'s), by name."""


def add_selection_argument(parser: LightningArgumentParser) -> None:
    """`selection:`, the end-of-fit selection's settings (`--selection.num_samples=64`); null
    (the default) samples nothing when fit ends."""
    parser.add_argument(
        f"--{SELECTION_KEY}",
        type=SelectionSettings | None,
        default=None,
        help="The end-of-fit selection (realfill.callbacks.CompleteTarget, added after SaveLoRA):"
        " its settings, or null for none.",
    )


def is_callback(callback, callback_class: type) -> bool:
    """Whether a config's callback entry is a `callback_class` (or a subclass of it)."""
    class_path = getattr(callback, "class_path", "") or ""
    module_name, _, name = class_path.rpartition(".")
    try:
        return issubclass(getattr(importlib.import_module(module_name), name), callback_class)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


class SceneCLI(LightningCLI):
    """LightningCLI over `RealFillModule` and `SceneDataModule` that checks the scene first."""

    def before_instantiate_classes(self) -> None:
        """Check the scene before the (slow) base model loads: a bad scene fails in a second.
        Its warnings wait for the data module's own load, so that each is shown once."""
        data = self.config.data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_scene(data.scene_dir, data.max_references)

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, with each config file that lists others under `config:` given as those
        files stacked (see `expand_composed_configs`)."""
        given = sys.argv[1:] if args is None else list(args)
        super().parse_arguments(parser, expand_composed_configs(given))

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The trainer, with `StepProgressBar` as its progress bar and `ParameterSummary` as
        its model summary unless the config names its own or turns them off
        (`trainer.enable_progress_bar` / `enable_model_summary: false`)."""
        trainer = self.config_init.trainer
        callbacks = trainer.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        defaults = [
            (StepProgressBar, ProgressBar, "enable_progress_bar"),
            (ParameterSummary, ModelSummary, "enable_model_summary"),
        ]
        added = [
            ours()
            for ours, kind, switch in defaults
            if trainer.get(switch) is not False and not any(isinstance(c, kind) for c in callbacks)
        ]
        if added:
            kwargs.setdefault("callbacks", [*callbacks, *added])
        return super().instantiate_trainer(**kwargs)


def moved_key_hint(message: str) -> str:
    """Where the moved setting a parser error names went (see `moved_settings`; the end-of-fit
    selection's `--trainer.callbacks.KEY`, now `--selection.KEY`), in a few words to append to
    it; empty if it names none."""
    given = re.search(r"NestedArg\(key='(\w+)'", message)
    if 'Parser key "trainer.callbacks"' in message and given and given[1] in SELECTION_KEYS:
        return f" (the end-of-fit selection's {given[1]} is now {SELECTION_KEY}.{given[1]})"
    for old, new in moved_settings().items():
        group, _, key = old.rpartition(".")
        pattern = rf"--{re.escape(old)}\b|'{group}' does not accept option '{key}'"
        if re.search(pattern, message):
            return f" ({old} is now {new})"
    return ""


class SceneParser(LightningArgumentParser):
    """The commands' parser: a config file of an earlier version (flat `model.*` keys that are
    now grouped, as in an old run dir's config.yaml) is read with its keys moved, and an error
    about a setting that moved on the command line names its new key."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        super().error(message + moved_key_hint(message), ex)

    def _load_config_parser_mode(self, content: str, path="", *args, **kwargs):
        config = yaml.safe_load(content) if content.strip() else None
        if isinstance(config, dict) and migrate_flat_settings(config):
            told = self.__dict__.setdefault("_told_migrated", set())
            if path not in told:  # the commands may parse a config twice
                told.add(path)
                print(
                    f"realfill: {path or 'a config'} is an earlier version's: its flat model "
                    "settings are read as model.compile.* and model.optimization.*",
                    file=sys.stderr,
                )
            content = yaml.safe_dump(config, sort_keys=False)
        return super()._load_config_parser_mode(content, path, *args, **kwargs)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """`--help` for the argparse commands (evaluate, benchmark): the module docstring as
    written, and each option's default where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def user_error(error: BaseException | None) -> Exception | None:
    """The user-facing error behind an exception, if any (config parsing may wrap it): ours,
    Lightning's verdict on trainer settings (e.g. a DDP preset on a machine without GPUs), or
    a config interpolation that cannot resolve (e.g. `${oc.env:WANDB_RUN_ID}` unset)."""
    while error is not None:
        if isinstance(error, RealFillError | MisconfigurationException):
            return error
        if isinstance(error, InterpolationResolutionError):
            reason = str(error).splitlines()[0].split("interpolation: ")[-1]
            return ConfigError(f"cannot resolve {error.full_key}: {reason}")
        error = error.__cause__ or error.__context__
    return None


STOPPED_BY_SIGTERM = 128 + 15
"""The exit status of a command stopped by SIGTERM, as the shell reports a killed process:
a job scheduler that pre-empts the run must not read it as success."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Raise Lightning's `SIGTERMException` at a SIGTERM inside the block, for work done
    outside a trainer (whose handler only records it, and which restores the default handler,
    a kill that skips every clean-up, when it ends): the block stops within moments, its
    clean-up runs, and the command exits 143. Only the main thread can install a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SIGTERMException()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a user-facing error raised inside into one line on stderr and exit code 2, and a
    stop by SIGTERM (which Lightning raises as a code-less, successful `SystemExit`) into one
    line and exit code 143; any other exception (a bug) keeps its traceback."""
    try:
        yield
    except SIGTERMException:
        print("realfill: stopped by SIGTERM", file=sys.stderr)
        raise SystemExit(STOPPED_BY_SIGTERM) from None
    except Exception as error:
        reason = user_error(error)
        if reason is None:
            raise
        print(f"realfill: error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


CONFIG_FLAGS = ("--config", "-c")
"""The flags whose value is a config file (or inline YAML, which jsonargparse also takes)."""


def config_files(args: list[str]) -> list[Path]:
    """The existing paths given to `--config` / `-c` (as `--config X` or `--config=X`)."""
    paths = []
    for flag, value in zip(args, [*args[1:], None], strict=True):
        name, equals, inline = flag.partition("=")
        given = inline if equals else value
        if name in CONFIG_FLAGS and given is not None and os.path.lexists(given):
            paths.append(Path(given))
    return paths


COMPOSE_KEY = "config"
"""The key of a config file that stacks others, as jsonargparse's own `config:` key does: a
file `{config: [base.yaml, model/sdxl.yaml]}` is those files given to `--config` in order."""


def composed_configs(path: Path, seen: tuple[Path, ...] = ()) -> list[Path]:
    """The config files `path` stands for: those its `config:` list names (relative to its
    folder, each expanded in turn), or `path` itself if it lists none (or is not YAML: the
    parser says why). `ConfigError` for a file that lists others and also sets keys (jsonargparse
    would reset the groups it sets), one that names a missing file, or a cycle."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: the configs it lists under {COMPOSE_KEY}: include it again")
    try:
        content = yaml.safe_load(read_text(path, ConfigError))
    except yaml.YAMLError:
        return [path]
    if not isinstance(content, dict) or COMPOSE_KEY not in content:
        return [path]
    if set(content) != {COMPOSE_KEY}:
        raise ConfigError(
            f"{path}: a config that lists others under {COMPOSE_KEY}: sets nothing else "
            "(put its settings in a file of their own and list that last)"
        )
    listed = content[COMPOSE_KEY]
    listed = [listed] if isinstance(listed, str) else listed
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise ConfigError(f"{path}: {COMPOSE_KEY}: must be a config file or a list of them")
    files = []
    for name in listed:
        child = path.parent / name
        if not os.path.isfile(child):
            raise ConfigError(f"{path}: lists {name}, which is not a file ({child})")
        files += composed_configs(child, (*seen, path.resolve()))
    return files


def expand_composed_configs(args: list[str]) -> list[str]:
    """`args` with each `--config FILE` that lists others under `config:` replaced by a
    `--config` for each file it stands for (see `composed_configs`), in order."""
    expanded = []
    skip_next = False
    for flag, value in zip(args, [*args[1:], None], strict=True):
        if skip_next:
            skip_next = False
            continue
        name, equals, inline = flag.partition("=")
        given = inline if equals else value
        if name not in CONFIG_FLAGS or given is None or not os.path.isfile(given):
            expanded.append(flag)
            continue
        skip_next = not equals
        for path in composed_configs(Path(given)):
            expanded += [name, str(path)]
    return expanded


def check_config_files(args: list[str]) -> None:
    """Refuse, in one line, a config file that is not a regular file (a FIFO would block the
    parser, a folder confuse it) or not UTF-8 text (the parser's decoding error is a
    traceback)."""
    for path in config_files(args):
        if not path.is_file():
            raise ConfigError(f"{path}: the config is not a regular file")
        read_text(path, ConfigError)


@contextmanager
def library_warnings_ignored() -> Iterator[None]:
    """Leave out warnings of the libraries' own doing, with nothing for a user to act on."""
    with warnings.catch_warnings():
        # Lightning 2.6 warns of its own use of torch's deprecated LeafSpec: nothing to act on.
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        # diffusers passes huggingface_hub a deprecated, ignored argument when it downloads.
        warnings.filterwarnings("ignore", message="The `local_dir_use_symlinks` argument")
        # LightningCLI warns when given args in a process with command-line arguments of its own,
        # which is what the Python API (`realfill.api`) does inside a script or the benchmark.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        # A fit resumed mid-epoch draws fresh examples, masks and noise (docs/runs.md): by
        # design, not the unreliability Lightning warns of for a non-resumable dataloader.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended")
        yield


@contextmanager
def user_errors_unwrapped() -> Iterator[None]:
    """Raise the user-facing error behind an exception raised inside (see `user_error`) in
    its place: config parsing wraps the error a class raises when it is built in its own."""
    try:
        yield
    except Exception as error:
        reason = user_error(error)
        if reason is None or reason is error:
            raise
        raise reason from error


def run_command(
    cli_class: type[SceneCLI],
    command: Callable[[SceneCLI], Result],
    save_config_callback: type[SaveConfigCallback] | None,
    args: list[str] | None,
) -> tuple[SceneCLI, Result]:
    """Parse the command line into `cli_class`, run `command` on it and return both; a problem
    with the user's input raises (the Python API's way; `run_cli` makes it one line).

    Configs are merged first and interpolated after (`omegaconf+`), and docstrings become
    `--help` text, headed by the command's module docstring.
    """
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    module = sys.modules[command.__module__]
    name = module.__spec__.name if module.__spec__ else module.__name__  # not "__main__"
    help_text = {"prog": f"python -m {name}", "description": module.__doc__}
    with library_warnings_ignored(), user_errors_unwrapped():
        check_config_files(sys.argv[1:] if args is None else list(args))
        cli = cli_class(
            RealFillModule,
            SceneDataModule,
            save_config_callback=save_config_callback,
            save_config_kwargs={"config_filename": layout.CONFIG_FILENAME},
            parser_kwargs={"parser_mode": "omegaconf+", **help_text},
            parser_class=SceneParser,
            args=args,
            run=False,
            auto_configure_optimizers=False,  # RealFillModule configures its own
        )
        return cli, command(cli)


def run_cli(
    cli_class: type[SceneCLI],
    command: Callable[[SceneCLI], object],
    save_config_callback: type[SaveConfigCallback] | None,
    args: list[str] | None,
) -> SceneCLI:
    """Parse the command line into `cli_class` and run `command` on it (see `run_command`). A
    problem with the user's input ends with one line on stderr and exit code 2, never a
    traceback."""
    with exit_on_user_error():
        cli, _ = run_command(cli_class, command, save_config_callback, args)
    return cli
