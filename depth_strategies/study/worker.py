"""One run of the comparison, in its own process: train with nerfstudio's trainer, evaluate on test views.

``python -m depth_strategies.study.worker JOB.json [PROGRESS_FD]`` where the job is written by
:mod:`depth_strategies.study.compare`. The run folder gets nerfstudio's usual output (``config.yml``,
``nerfstudio_models/``, tensorboard events), so ``ns-eval``, ``ns-render`` and ``ns-viewer`` work on it, plus
``curve.jsonl`` (periodic evaluations), ``views/*.npz`` (rendered panel views) and, written last and atomically,
``result.json``. A run without ``result.json`` is unfinished and is redone from scratch.

Progress goes, for the parent's progress bars, to its own channel: the file descriptor ``PROGRESS_FD`` (a pipe the
parent opened), one JSON object per line, ``{"step": s, "total": n}``. It never shares stdout with nerfstudio's
console, whose partial lines would otherwise be glued to progress lines.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

import torch
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.engine.trainer import TrainerConfig

from depth_strategies.core.atomic import write_text_atomic
from depth_strategies.core.training import seed_everything
from depth_strategies.methods import apply_overrides
from depth_strategies.scenes.nerfstudio_data import is_nerfstudio_data, to_nerfstudio_data
from depth_strategies.study.evaluation import ViewResult, evaluate_views
from depth_strategies.study.provenance import config_hash, git_state, resolved_config, source_hash

PROGRESS_INTERVAL_S = 1.0
"""Seconds between progress lines."""
WARMUP_FRACTION = 0.1
"""Share of the iterations (at most ``MAX_WARMUP``) left out of seconds per iteration: the first steps pay for
lazy initialisation (thread pools, allocator, kernels) and would penalise whichever method runs first."""
MAX_WARMUP = 20
"""Largest number of warm-up iterations excluded from the timing."""


NERFSTUDIO_DATA_SUFFIX = "-nerfstudio-data"
"""Folder beside a scene that holds its nerfstudio-data conversion (made once, by the first run that needs it)."""


def build_config(job: Dict[str, Any]) -> TrainerConfig:
    """The run's TrainerConfig: the method (or the external reference) and its overrides
    (:func:`depth_strategies.study.provenance.resolved_config`), its data, and run bookkeeping."""
    run = job["run"]
    data = Path(job["data"])
    if run["external"] == "depth-nerfacto-nerfstudio-data" and not is_nerfstudio_data(data):
        data = to_nerfstudio_data(data, data.parent / f"{data.name}{NERFSTUDIO_DATA_SUFFIX}")
    config = resolved_config(run)
    if is_nerfstudio_data(data) and not isinstance(config.pipeline.datamanager.dataparser, NerfstudioDataParserConfig):
        config = apply_overrides(config, {"pipeline.datamanager.dataparser": NerfstudioDataParserConfig()})
    iterations = int(run["iterations"])
    bookkeeping = {
        "pipeline.datamanager.data": data,
        "output_dir": Path(job["output_dir"]),
        "experiment_name": "run",
        "timestamp": "nerfstudio",
        "max_num_iterations": iterations,
        "steps_per_save": iterations,
        "save_only_latest_checkpoint": True,
        "steps_per_eval_batch": 0,
        "steps_per_eval_image": 0,
        "steps_per_eval_all_images": 0,
        "vis": "tensorboard",
        "machine.seed": int(run["seed"]),
        "machine.device_type": job["device"],
        "mixed_precision": job["device"] == "cuda" and config.mixed_precision,
    }
    config = apply_overrides(config, bookkeeping)
    if job.get("condition_free") and reads_training_depth(config):
        raise ValueError(
            f"{run['method']} is listed under condition_free (run once, reported under every condition), but it "
            "reads training depth, so its result depends on the condition: remove it from condition_free"
        )
    return config


def reads_training_depth(config: TrainerConfig) -> bool:
    """Whether a run's training reads the depth maps of its training split."""
    return config.pipeline.datamanager.train_depth != "ignored"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: str) -> Dict[str, float]:
    """Peak resident memory of this process and, on CUDA, peak GPU memory allocated by torch."""
    peak = {"cpu_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if device == "cuda":
        peak["gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def software_versions() -> Dict[str, str]:
    """Versions that produced a result."""
    import nerfstudio

    from depth_strategies import __version__

    try:
        from importlib.metadata import version

        ns_version = version("nerfstudio")
    except Exception:  # pragma: no cover - metadata missing only in odd installs
        ns_version = getattr(nerfstudio, "__version__", "unknown")
    return {
        "depth_strategies": __version__,
        "nerfstudio": ns_version,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_provenance(job: Dict[str, Any], device: str) -> Dict[str, Any]:
    """Where this run came from (``result.json``'s ``provenance``): the hashes of its resolved method config and of
    the training code (what its fingerprint was made from), the package version and git state, the platform, torch's
    threads, the device, and whether its randomness came from its seed (common random numbers: the ray batches and
    the guidance draws of runs with one seed are the same whatever the method)."""
    from depth_strategies import __version__

    return {
        "spec_fingerprint": job.get("provenance", {}).get("spec_fingerprint"),
        "config_hash": config_hash(resolved_config(job["run"])),
        "source_hash": source_hash(),
        "package_version": __version__,
        "git": git_state(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "common_random_numbers": True,
    }


def _view_dicts(results: List[ViewResult]) -> List[Dict[str, Any]]:
    return [
        {"index": r.index, "name": r.name, "metrics": r.metrics, "render_seconds": r.render_seconds} for r in results
    ]


def run_job(job: Dict[str, Any], progress: Optional[TextIO] = None) -> Dict[str, Any]:
    """Train and evaluate one run; returns (and writes) its result. Progress lines go to ``progress`` if given."""
    run_dir = Path(job["run_dir"])
    device = job["device"]
    config = build_config(job)
    if job.get("threads"):  # the executor's share of the CPU cores for this run (several runs at once)
        torch.set_num_threads(int(job["threads"]))
    seed_everything(int(job["run"]["seed"]))
    config.save_config()  # as ns-train does: ns-eval, ns-render and ns-viewer load the run from it
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup(test_mode="test")
    pipeline = trainer.pipeline
    curve_file = run_dir / "curve.jsonl"
    curve_file.unlink(missing_ok=True)
    curve_indices = list(range(min(int(job["curve_views"]), len(pipeline.datamanager.eval_dataset))))
    total = config.max_num_iterations
    warmup = min(MAX_WARMUP, int(total * WARMUP_FRACTION))
    clock = {"eval": 0.0, "eval_at_warmup": 0.0, "warm": None}

    def record_curve(step: int) -> None:
        start = time.perf_counter()
        views = evaluate_views(pipeline, curve_indices)
        point = {
            "step": step + 1,
            **{k: sum(v.metrics.get(k, float("nan")) for v in views) / len(views) for k in views[0].metrics},
        }
        with curve_file.open("a") as f:
            f.write(json.dumps(point) + "\n")
        clock["eval"] += time.perf_counter() - start

    def mark_warm(step: int) -> None:
        if step + 1 == warmup:
            _sync(device)
            clock["warm"], clock["eval_at_warmup"] = time.perf_counter(), clock["eval"]

    trainer.callbacks.append(
        TrainingCallback(
            where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION], update_every_num_iters=1, func=mark_warm
        )
    )
    every = int(job["eval_every"])
    if every > 0 and curve_indices:
        trainer.callbacks.append(
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION],
                update_every_num_iters=every,
                func=record_curve,
            )
        )
    done = threading.Event()

    def report_progress() -> None:
        while not done.wait(PROGRESS_INTERVAL_S):
            _write_progress(progress, {"step": trainer.step, "total": total})

    reporter = threading.Thread(target=report_progress, daemon=True)
    reporter.start()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        trainer.train()
    finally:
        done.set()
        reporter.join()
    _sync(device)
    end = time.perf_counter()
    train_seconds = end - start - clock["eval"]
    if clock["warm"] is not None and total > warmup:
        seconds_per_iteration = (end - clock["warm"] - (clock["eval"] - clock["eval_at_warmup"])) / (total - warmup)
    else:
        seconds_per_iteration = train_seconds / total
    _write_progress(progress, {"step": total, "total": total, "phase": "eval"})

    panel = [int(i) for i in job["panel_indices"]]
    views = evaluate_views(pipeline, None, save_dir=run_dir / "views", save_indices=panel)
    curve = [json.loads(line) for line in curve_file.read_text().splitlines()] if curve_file.exists() else []
    final = [v for v in views if v.index in curve_indices]
    if every > 0 and final and (not curve or curve[-1]["step"] != total):
        curve.append(
            {
                "step": total,
                **{k: sum(v.metrics.get(k, float("nan")) for v in final) / len(final) for k in final[0].metrics},
            }
        )
    rays = config.pipeline.datamanager.train_num_rays_per_batch
    render_total = sum(v.render_seconds for v in views)
    result = {
        "run": job["run"],
        "run_id": job["run_id"],
        "fingerprint": job["fingerprint"],
        "status": "ok",
        "config": str(trainer.base_dir / "config.yml"),
        "train": {
            "iterations": total,
            "wall_time_s": train_seconds,
            "seconds_per_iteration": seconds_per_iteration,
            "timed_iterations": total - warmup if clock["warm"] is not None else total,
            "rays_per_second": rays / seconds_per_iteration,
            "batch_rays": rays,
            **peak_memory_mb(device),
            "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        },
        "render": {"views": len(views), "frames_per_second": len(views) / render_total if render_total else None},
        "views": _view_dicts(views),
        "curve": curve,
        "software": software_versions(),
        "provenance": run_provenance(job, device),
    }
    write_text_atomic(run_dir / "result.json", json.dumps(result, indent=2, default=str))
    return result


def _write_progress(channel: Optional[TextIO], event: Dict[str, Any]) -> None:
    """One progress line; a parent that went away (closed pipe) must not stop the run."""
    if channel is None:
        return
    try:
        channel.write(json.dumps(event) + "\n")
        channel.flush()
    except (OSError, ValueError):  # BrokenPipeError is an OSError
        pass


def main(argv: List[str]) -> int:
    """Entry point: ``python -m depth_strategies.study.worker JOB.json [PROGRESS_FD]``."""
    job = json.loads(Path(argv[1]).read_text())
    progress = os.fdopen(int(argv[2]), "w") if len(argv) > 2 else None
    try:
        run_job(job, progress)
    except Exception as err:  # the parent reports the failure in the table and carries on
        traceback.print_exc()
        failure = {
            "run_id": job["run_id"],
            "fingerprint": job["fingerprint"],
            "status": "failed",
            "error": f"{type(err).__name__}: {err}".strip()[:2000],
        }
        write_text_atomic(Path(job["run_dir"]) / "failed.json", json.dumps(failure, indent=2, default=str))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
