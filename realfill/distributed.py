"""Many scenes on many GPUs: `realfill.benchmark --engine ray` runs its per-scene jobs on Ray.

Why Ray (the `cluster` extra) rather than a home-made scheduler or SLURM through submitit:
- one engine for one machine and for many: `ray.init()` starts a local Ray whose workers share
  the machine's GPUs, and `ray start --head` / `ray start --address=HEAD:6379` join machines
  into a cluster that the same command reaches with `--ray_address auto`; SLURM, Kubernetes
  (KubeRay) and clouds all start Ray clusters, while submitit needs SLURM and cannot be tested
  without it;
- one scene per GPU is a resource request (`num_gpus=1`): Ray sets `CUDA_VISIBLE_DEVICES` for
  each job and queues the rest until a GPU is free;
- a job whose worker process dies (out of memory, a killed process, a lost node) is retried
  (`max_retries`), and one that still fails comes back to the driver as an error, so every
  scene ends completed or reported;
- its local mode is the real engine with worker processes on the CPU, which the tests use.

Each job is `realfill.benchmark.complete_job`, the function the sequential benchmark runs, so
the outputs are the same folders (`<out>/<method>/<scene>/`): a re-run skips finished scenes
and evaluation (in the driver, after every job) merges them. On a cluster, `--benchmark`,
`--out` and the configs must be on a file system every machine sees, at the same path.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from realfill.errors import ConfigError


@dataclass(frozen=True)
class Resources:
    """What one job asks of the engine, and how often a job whose worker died is run again."""

    gpus: float
    cpus: float
    max_retries: int


@dataclass(frozen=True)
class Job:
    """One method on one scene: a name for the console and the arguments of the job function."""

    name: str
    args: tuple


@dataclass
class Outcome:
    """The jobs' ends: each finished job's line, and each failed job's one-line reason."""

    finished: dict[str, str]
    failed: dict[str, str]


def import_ray():
    """Ray, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            '--engine ray: Ray is not installed (pip install -e ".[cluster]")'
        ) from None
    return ray


def start(address: str | None, num_cpus: int | None) -> None:
    """Join the Ray cluster at `address` ("auto": the one `ray start` made on this machine), or
    start a local Ray with `num_cpus` worker slots (default: one per core). The workers inherit
    this process's environment (its PYTHONPATH included), so they import the same realfill."""
    ray = import_ray()
    pythonpath = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath}} if address is None else None
    ray.init(
        address=address,
        num_cpus=num_cpus if address is None else None,
        runtime_env=runtime_env,
        log_to_driver=True,
    )


def check_resources(resources: Resources) -> None:
    """A one-line error if no machine of the cluster can ever hold one job (Ray would queue
    it forever): e.g. `--gpus_per_scene 1` where there is no GPU."""
    ray = import_ray()
    total = ray.cluster_resources()
    for name, wanted, flag in (
        ("GPU", resources.gpus, "--gpus_per_scene"),
        ("CPU", resources.cpus, "--cpus_per_scene"),
    ):
        if wanted > total.get(name, 0):
            raise ConfigError(
                f"{flag} {wanted:g}: the Ray cluster has {total.get(name, 0):g} {name}s"
                + (" (--gpus_per_scene 0 runs scenes on CPUs)" if name == "GPU" else "")
            )


def one_line(error: BaseException) -> str:
    """A job's failure in one line: the cause's type and first line (a dead worker's, or the
    exception the job raised, without Ray's traceback)."""
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[0]}"


def run_jobs(function: Callable[..., str], jobs: Sequence[Job], resources: Resources) -> Outcome:
    """Run `function(*job.args)` for every job on the Ray this process joined, at most as many
    at once as the cluster's resources hold; print each job's returned line as it finishes and
    collect the failures (after their retries) by job name, so none goes missing."""
    ray = import_ray()
    check_resources(resources)
    remote = ray.remote(
        num_gpus=resources.gpus,
        num_cpus=resources.cpus,
        max_retries=resources.max_retries,
        retry_exceptions=False,  # a job that raises fails the same way again: report it
    )(function)
    pending = {remote.remote(*job.args): job.name for job in jobs}
    outcome = Outcome(finished={}, failed={})
    while pending:
        (done,), _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(done)
        try:
            outcome.finished[name] = ray.get(done)
            print(outcome.finished[name], flush=True)
        except ray.exceptions.RayError as error:
            outcome.failed[name] = one_line(error)
    return outcome


def run_on_ray(
    function: Callable[..., str],
    jobs: Sequence[Job],
    resources: Resources,
    address: str | None,
    num_cpus: int | None,
) -> Outcome:
    """Start or join Ray, run the jobs, and leave Ray (a local one stops with it)."""
    ray = import_ray()
    start(address, num_cpus)
    try:
        return run_jobs(function, jobs, resources)
    finally:
        ray.shutdown()


def absolute(path: Path) -> Path:
    """`path` made absolute here: a Ray worker need not start in the driver's folder."""
    return Path(path).resolve()
