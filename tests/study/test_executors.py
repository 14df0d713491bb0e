"""Executors of ds-compare: several runs at a time on this machine, retries, and Ray (a local instance)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from depth_strategies.study.compare import execute
from depth_strategies.study.executors import Events, LocalExecutor, Request, run_in_subprocess
from depth_strategies.study.protocol import load_protocol
from depth_strategies.study.runs import expand_runs
from tests.conftest import TEST_DATA, console_script


def test_local_executor_runs_jobs_at_a_time_with_their_share_of_cores_and_a_gpu_each():
    running, peak, seen = [0], [0], []
    lock = threading.Lock()

    def runner(job, log_path, on_progress):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            seen.append((job["threads"], job["env"]["CUDA_VISIBLE_DEVICES"]))
        time.sleep(0.2)
        on_progress(1, 1)
        with lock:
            running[0] -= 1
        return 0

    finished = []
    executor = LocalExecutor(runner=runner, jobs=2, gpus=[0, 1], cpu_count=8)
    executor.run([Request(f"r{i}", {}, Path(f"/nonexistent/{i}")) for i in range(5)],
                 Events(finished=lambda run_id, code: finished.append((run_id, code))))
    assert peak[0] == 2 and sorted(finished) == [(f"r{i}", 0) for i in range(5)]
    assert {threads for threads, _ in seen} == {4}  # 8 cores / 2 jobs
    assert {gpu for _, gpu in seen} == {"0", "1"}


def test_sigterm_during_a_parallel_study_starts_nothing_new_and_lets_the_runs_in_progress_finish():
    """``kill PID`` on ``ds-compare --jobs 2``: the handler ``entrypoint`` installs turns SIGTERM into the Ctrl-C
    path; the two runs in progress finish (kept), the three queued never start.

    The kernel may hand a process's signal to any of its threads (CI saw it go to a run's thread, and a queued run
    started before the main thread noticed): the main thread blocks SIGTERM here and the run's thread unblocks it, so
    that this case, the one that can go wrong, is the one tested every time."""
    from depth_strategies.study.compare import _interrupt

    started, finished = [], []
    lock, both_training = threading.Lock(), threading.Barrier(2, timeout=10)

    def runner(job, log_path, on_progress):
        with lock:
            started.append(job)
            first = len(started) == 1
        if len(started) <= 2:
            both_training.wait()
        if first:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # delivered to this thread, not the main one
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` from another shell, while two runs train
        time.sleep(0.5)
        return 0

    previous = signal.signal(signal.SIGTERM, _interrupt)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # the pool's threads inherit it
    try:
        with pytest.raises(KeyboardInterrupt):
            LocalExecutor(runner=runner, jobs=2, cpu_count=2).run(
                [Request(f"r{i}", {}, Path(f"/nonexistent/{i}")) for i in range(5)],
                Events(finished=lambda run_id, code: finished.append((run_id, code))))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGTERM, previous)
    deadline = time.time() + 10
    while len(finished) < len(started) and time.time() < deadline:
        time.sleep(0.05)
    assert len(started) == 2, "a queued run started after SIGTERM"
    assert sorted(code for _, code in finished) == [0, 0], "a run in progress did not finish"


def test_ds_compare_exits_130_on_sigterm_and_restores_the_previous_handler(monkeypatch, capsys):
    from depth_strategies.study import compare as compare_module

    def compare(args, figures=None):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt the study")

    monkeypatch.setattr(compare_module, "compare", compare)
    monkeypatch.setattr(sys, "argv", ["ds-compare", "quick"])
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        compare_module.entrypoint()
    assert stopped.value.code == 130 and "Interrupted" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is before


def _fake_runs(tmp_path, behaviour, retries):
    protocol = load_protocol("quick")
    runs = expand_runs(protocol)
    (tmp_path / "transforms_test.json").write_text(json.dumps({"frames": [{}, {}]}))
    attempts = {}

    def runner(job, log_path, on_progress):
        attempts[job["run_id"]] = attempts.get(job["run_id"], 0) + 1
        if behaviour(job["run_id"], attempts[job["run_id"]]):
            result = {"status": "ok", "fingerprint": job["fingerprint"], "views": [], "train": {}, "render": {}}
            (Path(job["run_dir"]) / "result.json").write_text(json.dumps(result))
            return 0
        return 3

    outcomes = execute(protocol, runs, {"builtin": tmp_path}, tmp_path / "out", "cpu", runner=runner,
                       retries=retries)
    return {o.spec.run_id: o.result["status"] for o in outcomes}, attempts, runs


def test_a_failed_run_is_retried_from_a_clean_folder_and_then_reported_failed_while_the_others_complete(tmp_path):
    flaky, broken = "builtin/depth-soft/seed0", "builtin/depth-hard/seed0"
    status, attempts, runs = _fake_runs(
        tmp_path, lambda run_id, attempt: run_id != broken and (run_id != flaky or attempt == 2), retries=1)
    assert status[flaky] == "ok" and attempts[flaky] == 2  # failed once, then succeeded
    assert status[broken] == "failed" and attempts[broken] == 2  # 1 + 1 retry
    assert all(status[r.run_id] == "ok" for r in runs if r.run_id != broken)


# ------------------------------------------------------------------------------------------- end to end
def _protocol_with_a_broken_method(tmp_path) -> Path:
    data = yaml.safe_load((TEST_DATA / "tiny_protocol.yaml").read_text())
    data["sweeps"], data["iterations"] = [], 2
    data["methods"] = ["depth-baseline", {"name": "broken", "base": "depth-hard",
                                          "overrides": {"pipeline.model.guided_fraction": 2.0}}]  # fails every time
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _compare(args, cwd):
    start = time.perf_counter()
    done = subprocess.run([console_script("ds-compare"), *args], capture_output=True, text=True, cwd=cwd, timeout=900,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, time.perf_counter() - start


@pytest.mark.slow
def test_ray_executor_runs_the_protocol_retries_failures_and_resumes(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'depth-nerf-strategies[ray]'")
    protocol = _protocol_with_a_broken_method(tmp_path)
    ray_run, ray_s = _compare([str(protocol), "--output", str(tmp_path / "ray"), "--executor", "ray", "--jobs", "2",
                               "--retries", "1"], tmp_path)
    print(f"\ntiny protocol, 2 runs: Ray with --jobs 2 {ray_s:.0f} s (Ray's start-up included)")
    assert "retrying" in ray_run.stdout and "failed" in ray_run.stdout
    results = json.loads((tmp_path / "ray" / "results.json").read_text())
    # what the local executor gives (tests/study/test_compare.py runs it end to end): every run of the plan, the
    # working one with its test views, the broken one failed with its error
    planned = {(r.scene, r.method, r.seed) for r in expand_runs(load_protocol(str(protocol)))}
    assert {(x["scene"], x["method"], x["seed"]) for x in results["runs"]} == planned
    working = next(x for x in results["runs"] if x["method"] == "depth-baseline")
    assert working["status"] == "ok" and len(working["views"]) == 3
    broken = next(x for x in results["runs"] if x["method"] == "broken")
    assert broken["status"] == "failed" and "guided fraction" in broken["error"]
    again, _ = _compare([str(protocol), "--output", str(tmp_path / "ray")], tmp_path)  # resume on this machine
    assert "Reusing 1 finished run(s); 1 to run." in again.stdout


def test_a_worker_imports_the_package_that_planned_its_run_not_one_in_its_current_directory(tmp_path, monkeypatch):
    # a study started from a folder holding another checkout (here a decoy whose import fails) trains with the code
    # whose hash the run's fingerprint holds; before, `python -m` put the current directory first
    decoy = tmp_path / "elsewhere" / "depth_strategies"
    (decoy / "study").mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy checkout was imported')\n")
    (decoy / "study" / "__init__.py").write_text("")
    monkeypatch.chdir(decoy.parent)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = {"run_dir": str(run_dir), "run_id": "x/y/seed0", "fingerprint": "f", "run": {}, "device": "cpu"}
    code = run_in_subprocess(job, run_dir / "log.txt", lambda step, total: None)
    log = (run_dir / "log.txt").read_text()
    assert "decoy" not in log
    assert code == 1 and "failed" in (run_dir / "failed.json").read_text()  # the real worker ran and refused the job


def test_busy_machine_warning_fires_at_half_the_cores_in_use_and_names_the_thread_share():
    from depth_strategies.study.executors import busy_machine_warning

    assert busy_machine_warning(0.9, 2, 1) is None  # below 0.5 per core: quiet
    assert busy_machine_warning(0.0, 16, 4) is None
    warning = busy_machine_warning(1.0, 2, 1)  # exactly 0.5 per core
    assert warning is not None and "about 1.0 of its 2 cores in use" in warning and "use 2 thread(s)" in warning
    assert "use 1 thread(s)" in busy_machine_warning(3.2, 2, 2)
    assert "OMP_NUM_THREADS" in warning


def test_cpu_times_count_idle_and_iowait_as_not_busy():
    from depth_strategies.study.executors import cpu_times

    # user nice system idle iowait irq softirq steal guest guest_nice
    assert cpu_times("cpu  10 5 5 70 10 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n") == (20.0, 100.0)


def test_busy_cores_sees_a_spinning_process_within_half_a_second():
    from depth_strategies.study.executors import busy_cores

    if not Path("/proc/stat").is_file():
        pytest.skip("no /proc/stat on this platform: busy_cores falls back to the load average")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(os.cpu_count() or 1) >= 0.8  # the spinner holds at least most of one core
    finally:
        spinner.kill()
        spinner.wait()
