"""Who runs the runs of ``ds-compare``: this machine (``local``, one or ``--jobs N`` at a time) or a Ray cluster
(``ray``: an embedded local instance by default, an existing cluster with ``--ray-address``).

Every executor runs the same thing, a worker process per run (:func:`run_in_subprocess` over a ``job.json``, here
with its progress channel), and reports through the same three events, so that the results are identical in form
whichever runs them; retries and resume are the caller's (:func:`depth_strategies.study.compare.execute`, which
imports this module; this module imports nothing of ``compare``). An executor is an existing engine or the standard
library, never a scheduler of our own: the local one is a ``concurrent.futures`` thread pool whose threads each
wait on one worker process; the Ray one submits one Ray task per run with the resources the run declares and lets
Ray place it.
"""

from __future__ import annotations

import json
import os
import queue
import site
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from depth_strategies.core.atomic import write_text_atomic

Runner = Callable[[Dict[str, Any], Path, Callable[[int, int], None]], int]
"""Runs one job (``job``, ``log_path``, ``on_progress(step, total)``) and returns the worker's exit status."""

SIGNAL_POLL_S = 0.1
"""How often (seconds) the thread that waits on parallel runs wakes to run pending signal handlers. The kernel may
deliver ``kill PID``'s SIGTERM to any thread; Python runs the handler only in the main thread and only when that
thread runs Python code, so a main thread blocked until a run finishes would let a queued run start first."""

WORKER_MODULE = "depth_strategies.study.worker"
"""Module run (``python -P -m``) for each training run."""
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The folder this ``depth_strategies`` is imported from."""
WORKER: Tuple[str, ...] = (sys.executable, "-P", "-m", WORKER_MODULE)
"""The worker's command line. ``-P``: the current directory is not put first on the worker's ``sys.path``, so a
study started from a folder that holds another checkout of the package (a frozen worktree, an older clone) trains
with the code that planned it, not with that folder's (:func:`worker_environment` puts this package first)."""

ProgressCallback = Callable[[int, int], None]


def parse_progress(line: str) -> Optional[Tuple[int, int]]:
    """``(step, total)`` of one line of the worker's progress channel, or None for a line that is not one:
    progress only drives the bars, so a damaged line is skipped, never fatal to the study."""
    try:
        event = json.loads(line)
        return int(event["step"]), int(event["total"])
    except (ValueError, TypeError, KeyError):
        return None


def worker_environment(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a worker process: this process's, the job's ``extra`` (e.g. the GPU the executor gave the
    run), and, where this package is a source checkout rather than an installed copy, its folder first on
    ``PYTHONPATH``, so that the worker imports the code of the ``ds-compare`` that planned the run (whose hash the
    run's fingerprint holds) whatever the worker's current directory or the editable install point at."""
    env = {**os.environ, **(extra or {})}
    installed = any(PACKAGE_ROOT == Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()])
    if not installed:
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def run_in_subprocess(
    job: Dict[str, Any],
    log_path: Path,
    on_progress: ProgressCallback,
    worker: Sequence[str] = WORKER,
) -> int:
    """Run one job in a fresh process (``worker JOB.json PROGRESS_FD``); its stdout and stderr go to ``log_path``,
    its progress comes back over a pipe of its own."""
    job_path = Path(job["run_dir"]) / "job.json"
    write_text_atomic(job_path, json.dumps(job, indent=2))
    read_fd, write_fd = os.pipe()
    with log_path.open("w") as log, os.fdopen(read_fd) as channel:
        try:
            env = worker_environment(job.get("env", {}))
            proc = subprocess.Popen(
                [*worker, str(job_path), str(write_fd)], stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)  # the child holds the only write end: the loop below ends when it exits
        try:
            for line in channel:
                event = parse_progress(line)
                if event is not None:
                    on_progress(*event)
            return proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


BUSY_LOAD_PER_CORE = 0.5
"""Busy cores per core (CPU time in use over a short window) above which a CPU study warns that the machine is
already busy (on the 2-core development machine, beside another study, each run trained 9-27x slower:
docs/comparing.md)."""


def cpu_times(stat_text: str) -> Tuple[float, float]:
    """(busy, total) CPU time since boot from the first line of ``/proc/stat`` (``cpu user nice system idle iowait
    irq softirq steal ...``): idle and iowait are not busy."""
    fields = [float(x) for x in stat_text.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def busy_cores(cpu_count: int, interval_s: float = 0.5) -> Optional[float]:
    """How many cores are in use now: the busy share of CPU time over ``interval_s`` (two reads of ``/proc/stat``)
    times ``cpu_count``; the 1-minute load average where ``/proc/stat`` does not exist (it lags: it still counts
    a study that ended a minute ago); None where neither exists."""
    stat = Path("/proc/stat")
    if stat.is_file():
        busy0, total0 = cpu_times(stat.read_text())
        time.sleep(interval_s)
        busy1, total1 = cpu_times(stat.read_text())
        return cpu_count * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def busy_machine_warning(busy: float, cpu_count: int, jobs: int) -> Optional[str]:
    """A warning when a study about to train on the CPU finds ``busy`` of its ``cpu_count`` cores already in use
    (:func:`busy_cores`; at or above :data:`BUSY_LOAD_PER_CORE` per core): its runs' torch threads will compete with
    what runs there, so they train slower and their times do not compare with other studies'; None otherwise."""
    if cpu_count < 1 or busy < BUSY_LOAD_PER_CORE * cpu_count:
        return None
    share = max(1, cpu_count // max(1, jobs))
    return (f"this machine is already busy (about {busy:.1f} of its {cpu_count} cores in use) and these runs will "
            f"each use {share} thread(s): they compete with what runs there, train slower, and their times do not "
            "compare with other studies'. Give each study its share of the cores (OMP_NUM_THREADS=1, or one "
            "ds-compare with --jobs N; docs/comparing.md), or wait.")


@dataclass
class Request:
    """One run to execute: its job (the worker's ``job.json``), where its log goes, and its resources."""

    run_id: str
    job: Dict[str, Any]
    log_path: Path
    cpus: float = 1.0
    """CPU cores the run may use (its torch threads)."""
    gpus: float = 0.0
    """GPUs the run needs (0 on the CPU)."""
    memory_gb: float = 0.0
    """Memory to reserve for the run (Ray only; 0 reserves none)."""


@dataclass
class Events:
    """What an executor reports; each callback may be called from another thread."""

    started: Callable[[str], None] = lambda run_id: None
    progress: Callable[[str, int, int], None] = lambda run_id, step, total: None
    finished: Callable[[str, int], None] = lambda run_id, code: None


class Executor(Protocol):
    """Runs every request once and reports through ``events``; returns when all have finished."""

    def run(self, requests: Sequence[Request], events: Events) -> None: ...


@dataclass
class LocalExecutor:
    """``jobs`` worker processes at a time on this machine.

    With several jobs, each run gets its share of the CPU cores as its torch threads (``threads`` in its job; on 2
    cores two runs at once gain nothing without it) and, on a machine with GPUs, a GPU of its own through
    ``CUDA_VISIBLE_DEVICES`` (runs are given the GPUs in turn)."""

    runner: Runner
    jobs: int = 1
    gpus: Sequence[int] = ()
    """GPU indices to hand out to concurrent runs; empty on the CPU."""
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)

    def run(self, requests: Sequence[Request], events: Events) -> None:
        slots: "queue.Queue[int]" = queue.Queue()
        for slot in range(max(1, self.jobs)):
            slots.put(slot)
        threads = max(1, self.cpu_count // max(1, self.jobs))

        stopping = threading.Event()  # set on Ctrl-C / SIGTERM: a run that has not started yet never starts

        def one(request: Request) -> None:
            slot = slots.get()
            if stopping.is_set():
                slots.put(slot)
                return
            try:
                job = dict(request.job)
                if self.jobs > 1:
                    job["threads"] = threads
                if self.gpus:
                    job["env"] = {**job.get("env", {}), "CUDA_VISIBLE_DEVICES": str(self.gpus[slot % len(self.gpus)])}
                events.started(request.run_id)
                code = self.runner(job, request.log_path, lambda s, t: events.progress(request.run_id, s, t))
            except Exception:  # noqa: BLE001 - reported as a failed run, the others go on
                code = 1
            finally:
                slots.put(slot)
            events.finished(request.run_id, code)

        if self.jobs <= 1:  # one at a time, in this thread: Ctrl-C reaches the run and stops the comparison at once
            for request in requests:
                one(request)
            return
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        pending = {pool.submit(one, r) for r in requests}
        try:
            while pending:  # a timed wait, so that a signal is handled within SIGNAL_POLL_S
                done, pending = wait(pending, timeout=SIGNAL_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        except BaseException:  # Ctrl-C: start nothing more (the running workers got the terminal's SIGINT too)
            stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


def _ray_task(job: Dict[str, Any], log_path: str) -> int:
    """The body of one Ray task: the run's worker process, on whichever node Ray chose (the run folder must be on
    a path every node shares)."""
    return run_in_subprocess(job, Path(log_path), lambda step, total: None)


@dataclass
class RayExecutor:
    """One Ray task per run, with the run's CPUs and GPUs as the task's resources; Ray decides where and when.

    ``address`` None starts an embedded local Ray instance with ``jobs`` x the runs' CPUs (nothing to set up), else
    connects to that cluster (``auto``, or ``ray://host:port``). Progress is reported per finished run (a Ray task
    does not stream the worker's progress)."""

    address: Optional[str] = None
    jobs: int = 1

    def run(self, requests: Sequence[Request], events: Events) -> None:
        import ray

        if not requests:
            return
        started_here = not ray.is_initialized()
        if started_here:
            if self.address is None:
                cpus = max(r.cpus for r in requests) * max(1, self.jobs)
                ray.init(num_cpus=cpus, num_gpus=max(r.gpus for r in requests) * max(1, self.jobs),
                         include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
        try:
            task = ray.remote(max_retries=0)(_ray_task)  # one remote function; each run sets its own resources
            pending: Dict[Any, Request] = {}
            for request in requests:
                job = {**request.job, "threads": max(1, int(request.cpus))}
                memory = {"memory": int(request.memory_gb * 2**30)} if request.memory_gb else {}
                ref = task.options(num_cpus=request.cpus, num_gpus=request.gpus, **memory).remote(
                    job, str(request.log_path))
                pending[ref] = request
                events.started(request.run_id)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    request = pending.pop(ref)
                    try:
                        code = int(ray.get(ref))
                    except Exception:  # noqa: BLE001 - a task that died (node lost, worker crash): a failed run
                        code = 1
                    events.finished(request.run_id, code)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(name: str, runner: Runner, jobs: int = 1, ray_address: Optional[str] = None,
                  gpus: Sequence[int] = ()) -> Executor:
    """The executor called ``name`` ("local" or "ray")."""
    if name == "local":
        return LocalExecutor(runner=runner, jobs=jobs, gpus=list(gpus))
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SystemExit(
                "ds-compare: --executor ray needs Ray: pip install 'depth-nerf-strategies[ray]' (or pip install ray)"
            ) from None
        return RayExecutor(address=ray_address, jobs=jobs)
    raise ValueError(f"unknown executor {name!r}; use local or ray")


def visible_gpus() -> List[int]:
    """Indices of the GPUs torch sees (none on a CPU-only machine)."""
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []

