"""``ds-compare``: the whole study in one command.

Trains every run of a protocol (``configs/<name>.yaml``) in its own process, evaluates it on held-out test
views, and writes into the output folder::

    results.json   every metric per method, view and seed; costs; protocol and software versions
    results.csv    one row per (scene, method, metric) with the paired statistics
    results.md     the tables (mean ± std, best in bold, difference to the baseline, statistics, ablations)
    plots/         curves, bars with confidence intervals, per-view scatter, ablation plots
    panels/        ground truth | each method; rows RGB, depth, depth error
    runs/<scene>/<method>/seed<k>/   nerfstudio output (config.yml, checkpoints), result.json, curve.jsonl, views/

Rerunning the same command skips finished runs (``result.json`` with the same fingerprint). A run without
``result.json`` is redone from scratch; every file is written atomically, so an interruption (Ctrl-C, crash,
full disk) never leaves a half-written result. A failed run is reported as failed with its error and the
other runs still complete.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from depth_strategies.study import comparisons, provenance, report
from depth_strategies.study.executors import (
    Events,
    Executor,
    LocalExecutor,
    Request,
    busy_cores,
    busy_machine_warning,
    make_executor,
    run_in_subprocess,
    visible_gpus,
)
from depth_strategies.study.protocol import (
    Protocol,
    ProtocolError,
    load_protocol,
    protocol_from_results,
    resolve_path,
)
from depth_strategies.study.results import (
    Figures,
    RunOutcome,
    assemble_results,
    resolve_device,
    stored_evaluation,
    write_outputs,
)
from depth_strategies.study.runs import RunSpec, expand_runs, only_conditions
from depth_strategies.study.scene_folders import prepare_scene, test_view_count

CONSOLE = Console()


# ------------------------------------------------------------------------------------------- runs
def _read_result(run_dir: Path) -> Optional[Dict[str, Any]]:
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _finished(run_dir: Path, wanted: Dict[str, str]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """The run folder's finished result of this run spec, if any, and why it is stale (None: made by this code and
    config; :func:`provenance.classify`)."""
    result = _read_result(run_dir)
    state, reason = provenance.classify(result, wanted)
    return (result if state else None), reason


def panel_indices(protocol: Protocol, views: int) -> List[int]:
    """The test views whose renders a run keeps for the panels: the first ``panel_views`` of the scene's ``views``
    test views, or the protocol's list of indices (each must exist)."""
    if isinstance(protocol.panel_views, int):
        return list(range(min(protocol.panel_views, views)))
    missing = [i for i in protocol.panel_views if i >= views]
    if missing:
        raise ProtocolError(f"protocol {protocol.name}: panel_views names test view {missing[0]}, but the scene has "
                            f"{views} test views (indices 0 to {views - 1}); remove it or use a count")
    return list(protocol.panel_views)


def _job(spec: RunSpec, protocol: Protocol, scene_dir: Path, views: int, run_dir: Path, device: str,
         wanted: Dict[str, str]) -> Dict[str, Any]:
    """The worker's job of one run; ``views``: the scene's number of test views (:func:`test_view_count`);
    ``wanted``: the run's provenance as this code makes it (:func:`provenance.expected`)."""
    return {
        "run": dataclasses.asdict(spec),
        "run_id": spec.run_id,
        "fingerprint": wanted["fingerprint"],
        "provenance": dict(wanted),
        "data": str(scene_dir),
        "run_dir": str(run_dir),
        "output_dir": str(run_dir / "nerfstudio"),
        "device": device,
        "eval_every": protocol.eval_every,
        "curve_views": protocol.curve_views,
        "panel_indices": panel_indices(protocol, views),
        "condition_free": spec.method in protocol.condition_free,
    }


def _failure(spec: RunSpec, run_dir: Path, code: int, log_path: Path, fingerprint: str) -> Dict[str, Any]:
    failed = run_dir / "failed.json"
    error = None
    if failed.is_file():
        error = json.loads(failed.read_text()).get("error")
    if not error and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        error = f"worker killed by {name} (the run was interrupted; rerun to redo it)"
    if not error:
        tail = log_path.read_text().strip().splitlines()[-1:] if log_path.is_file() else []
        error = f"worker exited with status {code}" + (f": {tail[0]}" if tail else "")
    return {
        "run": dataclasses.asdict(spec),
        "run_id": spec.run_id,
        "fingerprint": fingerprint,
        "status": "failed",
        "error": error,
        "log": str(log_path),
    }


def execute(
    protocol: Protocol,
    runs: List[RunSpec],
    scene_dirs: Dict[str, Path],
    out: Path,
    device: str,
    runner=run_in_subprocess,
    executor: Optional[Executor] = None,
    retries: int = 0,
    reuse_stale: bool = False,
) -> List[RunOutcome]:
    """Run (or reuse) every run with progress bars; returns the outcomes in run order.

    ``executor`` (default: one run at a time on this machine) runs the pending runs; a failed run is run again up
    to ``retries`` times, each time from a clean folder, and then reported as failed, the others going on. A
    finished run made by other training code or another method config is *stale*: named, and trained again unless
    ``reuse_stale`` (then reused and marked ``stale`` in the results)."""
    executor = executor or LocalExecutor(runner=runner)
    outcomes: Dict[str, RunOutcome] = {}
    pending: Dict[str, Tuple[RunSpec, Path]] = {}
    wanted = {spec.run_id: provenance.expected(spec) for spec in runs}
    stale: Dict[str, str] = {}
    for spec in runs:
        run_dir = out / "runs" / spec.run_id
        finished, reason = _finished(run_dir, wanted[spec.run_id])
        if finished is not None and reason is not None:
            stale[spec.run_id] = reason
        if finished is not None and reason is None:
            outcomes[spec.run_id] = RunOutcome(spec, finished, reused=True)
        elif finished is not None and reuse_stale:
            outcomes[spec.run_id] = RunOutcome(spec, {**finished, "stale": reason}, reused=True)
        else:
            pending[spec.run_id] = (spec, run_dir)
    if stale:
        action = "reusing them (--reuse-stale)" if reuse_stale else "training them again (--reuse-stale reuses them)"
        CONSOLE.print(f"[yellow]{len(stale)} finished run(s) are stale[/yellow], {action}:")
        for run_id, reason in stale.items():
            CONSOLE.print(f"  stale {run_id}: {reason}", markup=False)
    if outcomes:
        CONSOLE.print(f"[green]Reusing {len(outcomes)} finished run(s)[/green]; {len(pending)} to run.")
    if pending and device == "cpu" and isinstance(executor, LocalExecutor):
        in_use = busy_cores(executor.cpu_count)
        busy = busy_machine_warning(in_use, executor.cpu_count, executor.jobs) if in_use is not None else None
        if busy:
            CONSOLE.print(f"[yellow]Warning:[/yellow] {busy}", markup=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=CONSOLE, transient=False) as progress:
        overall = progress.add_task("all runs (iterations)", total=sum(s.iterations for s, _ in pending.values()))
        counts = progress.add_task("runs done / running / failed", total=len(pending))
        tasks: Dict[str, Any] = {}
        done_iterations: Dict[str, int] = {}
        state = {"running": 0, "failed": 0, "done": 0}

        def show_counts() -> None:
            progress.update(counts, completed=state["done"] + state["failed"],
                            description=f"runs done {state['done']} / running {state['running']} / failed "
                                        f"{state['failed']}")

        def started(run_id: str) -> None:
            spec = pending[run_id][0]
            tasks[run_id] = progress.add_task(f"{run_id}", total=spec.iterations)
            state["running"] += 1
            show_counts()

        def on_progress(run_id: str, step: int, total: int) -> None:
            done_iterations[run_id] = min(step, total)
            progress.update(tasks[run_id], completed=min(step, total))
            progress.update(overall, completed=sum(done_iterations.values()))

        views = {scene: test_view_count(scene_dir) for scene, scene_dir in scene_dirs.items()} if pending else {}
        resources = protocol.resources
        cpus = float(resources.get("cpus", 1.0))
        gpus = float(resources.get("gpus", 1.0 if device == "cuda" else 0.0))
        memory_gb = float(resources.get("memory_gb", 0.0))
        attempts: Dict[str, int] = {}
        to_run = list(pending)
        while to_run:
            requests = []
            for run_id in to_run:
                spec, run_dir = pending[run_id]
                if run_dir.exists():
                    shutil.rmtree(run_dir)  # unfinished or failed earlier: start clean
                run_dir.mkdir(parents=True)
                attempts[run_id] = attempts.get(run_id, 0) + 1
                job = _job(spec, protocol, scene_dirs[spec.scene], views[spec.scene], run_dir, device, wanted[run_id])
                requests.append(Request(run_id, job, run_dir / "log.txt", cpus=cpus, gpus=gpus, memory_gb=memory_gb))
            retry: List[str] = []

            def finished_run(run_id: str, code: int) -> None:
                spec, run_dir = pending[run_id]
                state["running"] -= 1
                progress.update(tasks[run_id], completed=spec.iterations, visible=False)
                done_iterations[run_id] = spec.iterations
                progress.update(overall, completed=sum(done_iterations.values()))
                result, reason = _finished(run_dir, wanted[run_id])
                if result is not None and result.get("fingerprint") != wanted[run_id]["fingerprint"]:
                    result = None  # an earlier result of the spec, not this run's
                if result is not None and reason is not None:
                    result = {**result, "stale": reason}  # the worker's code changed under the study: kept, marked
                if result is not None:  # complete and atomic, even if the worker died after writing it
                    outcomes[run_id] = RunOutcome(spec, result)
                    state["done"] += 1
                    note = "" if code == 0 else f" (its worker then exited with status {code})"
                    progress.console.print(f"  [green]done[/green] {run_id}{note}")
                else:
                    outcomes[run_id] = RunOutcome(spec, _failure(spec, run_dir, code, run_dir / "log.txt",
                                                                 wanted[run_id]["fingerprint"]))
                    error = outcomes[run_id].result["error"]
                    if attempts[run_id] <= retries:
                        retry.append(run_id)
                        done_iterations[run_id] = 0
                        progress.console.print(f"  [yellow]retrying[/yellow] {run_id} (attempt {attempts[run_id]} "
                                               f"of {retries + 1} failed: {error})")
                    else:
                        state["failed"] += 1
                        progress.console.print(f"  [red]failed[/red] {run_id}: {error} (log: {run_dir / 'log.txt'})")
                show_counts()

            executor.run(requests, Events(started=started, progress=on_progress, finished=finished_run))
            to_run = retry
    order = {spec.run_id: i for i, spec in enumerate(runs)}
    return sorted(outcomes.values(), key=lambda o: order[o.spec.run_id])




# ------------------------------------------------------------------------------------------- CLI
@dataclass(frozen=True)
class CompareArgs:
    """Train and compare the depth strategies on a protocol; write tables, statistics, plots and panels."""

    protocol: tyro.conf.Positional[str] = "quick"
    """A shipped protocol's name (quick, lego, lego-fewview, ablation) or the path of a YAML file."""
    output: Optional[Path] = None
    """Output folder (default: results/<protocol name>). Rerunning with the same folder resumes."""
    methods: Tuple[str, ...] = ()
    """Only these methods of the protocol (the baseline is always included)."""
    conditions: Tuple[str, ...] = ()
    """Only these conditions of a protocol with conditions (robustness, regimes); results.json keeps the whole
    protocol, so --report-only afterwards reports every condition's finished runs and lists the others missing."""
    seeds: Optional[int] = None
    """Number of seeds, overriding the protocol's."""
    report_only: bool = False
    """Regenerate results.json, tables, plots and panels from the per-run results under the output folder without
    training (every statistic recomputed; runs not finished yet are listed as missing)."""
    reuse_stale: bool = False
    """Reuse finished runs made by other training code or another method config (stale runs; by default they are
    named and trained again). The report lists the stale runs it used."""
    data_root: Path = Path(".")
    """Folder that relative scene paths of the protocol are resolved from (the shipped lego protocols name
    ../shared/data/lego, relative to the repository root)."""
    executor: Optional[Literal["local", "ray"]] = None
    """Who runs the runs: "local" (this machine) or "ray" (a local Ray instance, or the cluster at
    --ray-address); default: the protocol's ``executor``."""
    jobs: int = 1
    """Runs at a time: each gets its share of the CPU cores (torch threads), and on a machine with several GPUs a
    GPU of its own."""
    ray_address: Optional[str] = None
    """With --executor ray: an existing cluster ("auto", "ray://host:10001"); default: an embedded local instance.
    Run folders must be on a path every node can reach."""
    retries: int = 0
    """Run a failed run again up to this many times (from a clean folder) before reporting it as failed."""
    plan: bool = False
    """Print the runs, which are already done, their device and estimated cost, and the total; run nothing."""
    seconds_per_iteration: Optional[float] = None
    """For --plan: seconds per training iteration to assume where no run of the method has finished (e.g. the GPU
    figure of scripts/gpu_check.sh)."""


def command_line(args: CompareArgs) -> str:
    """The ``ds-compare`` command that reproduces these results (the arguments that decide what runs and where;
    not how it is executed: --jobs, --executor, --retries), recorded in results.json and results.md."""
    parts = ["ds-compare", args.protocol]
    if args.output is not None:
        parts += ["--output", str(args.output)]
    if args.data_root != Path("."):
        parts += ["--data-root", str(args.data_root)]
    if args.seeds is not None:
        parts += ["--seeds", str(args.seeds)]
    if args.methods:
        parts += ["--methods", *args.methods]
    if args.conditions:
        parts += ["--conditions", *args.conditions]
    if args.reuse_stale:
        parts += ["--reuse-stale"]
    return " ".join(parts)


def compare(args: CompareArgs, runner=run_in_subprocess, figures: Optional[Figures] = None) -> Dict[str, Any]:
    """Run a comparison; returns the results dictionary. ``figures`` draws the plots and panels (:data:`Figures`;
    none without it)."""
    if args.report_only:
        out = args.output or Path("results") / Path(args.protocol).stem
        return _finish(report_only_results(args, out), out, time.perf_counter(), figures)
    protocol = load_protocol(args.protocol)
    if args.seeds is not None:
        if args.seeds < 1:
            raise ProtocolError(f"--seeds must be at least 1, got {args.seeds}")
        protocol = dataclasses.replace(protocol, seeds=tuple(range(args.seeds)))
    out = args.output or Path("results") / protocol.name
    if not args.plan:
        out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    device = resolve_device(protocol.device)
    runs = expand_runs(protocol, list(args.methods) or None)
    if args.conditions:
        runs = only_conditions(protocol, runs, args.conditions)
    if args.plan:
        from depth_strategies.study.plan import plan_rows, render_plan

        CONSOLE.print(render_plan(protocol, plan_rows(protocol, runs, out, device, args.seconds_per_iteration),
                                  jobs=args.jobs),
                      markup=False, soft_wrap=True)
        return {}
    CONSOLE.print(
        f"[bold]ds-compare[/bold] protocol [cyan]{protocol.name}[/cyan] ({protocol.source}): "
        f"{len(runs)} runs on {device}, output {out}"
    )
    scene_dirs = {s.name: prepare_scene(s, out, args.data_root) for s in protocol.scenes}
    if args.jobs < 1 or args.retries < 0:
        raise ProtocolError(f"--jobs must be >= 1 and --retries >= 0, got {args.jobs} and {args.retries}")
    executor = make_executor(args.executor or protocol.executor, runner, jobs=args.jobs,
                             ray_address=args.ray_address, gpus=visible_gpus() if device == "cuda" else ())
    outcomes = execute(protocol, runs, scene_dirs, out, device, runner, executor=executor, retries=args.retries,
                       reuse_stale=args.reuse_stale)
    results = assemble_results(protocol, outcomes, device, command_line(args), time.perf_counter() - start,
                               scene_dirs)
    return _finish(results, out, start, figures)


def collect_finished(runs: List[RunSpec], out: Path,
                     recorded: Optional[Dict[str, Dict[str, Any]]] = None) -> Tuple[List[RunOutcome], List[str]]:
    """What the run folders under ``out/runs`` hold, training nothing, in run order: the finished runs (by whichever
    code made them: each records its own provenance, which the report shows), the runs that failed
    (``failed.json``), a run whose folder was not kept as ``recorded`` (results.json's entries by run id) has it, and
    the run ids of the runs with none of these (not run yet, or unfinished)."""
    outcomes, missing = [], []
    recorded = recorded or {}
    for spec in runs:
        run_dir = out / "runs" / spec.run_id
        wanted = provenance.expected(spec)
        finished, _ = _finished(run_dir, wanted)
        if finished is not None:
            outcomes.append(RunOutcome(spec, finished, reused=True))
        elif (run_dir / "failed.json").is_file():
            outcomes.append(RunOutcome(spec, _failure(spec, run_dir, 1, run_dir / "log.txt", wanted["fingerprint"]),
                                       reused=True))
        elif spec.run_id in recorded:
            entry = recorded[spec.run_id]
            outcomes.append(RunOutcome(spec, {**entry, "software": {"platform": entry.get("platform")}},
                                       reused=True))
        else:
            missing.append(spec.run_id)
    return outcomes, missing


def path_scene_folders(protocol: Protocol, data_root: Path) -> Dict[str, Path]:
    """The folders of the protocol's ``path`` scenes that are on this machine (a report regenerated elsewhere keeps
    the stored description of the others)."""
    found = {}
    for scene in protocol.scenes:
        if scene.path is not None:
            try:
                found[scene.name] = resolve_path(scene.path, data_root)
            except ProtocolError:
                continue
    return found


def report_only_results(args: CompareArgs, out: Path) -> Dict[str, Any]:
    """The results of ``--report-only`` into ``out``: recomputed from the per-run results under it, training
    nothing. The protocol as the study ran it (from its results.json; before the first report, the protocol named on
    the command line) says which runs belong to the study; the runs not finished are listed under ``missing`` and in
    the report (the methods are those the study ran, unless ``--methods`` names others). A run whose folder was not
    kept is taken as the last results.json recorded it; without any run folder the results.json is read as it is,
    its comparisons recomputed. The machine, wall time and reused runs stay those of the invocation that trained."""
    previous_path = out / "results.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else None
    if not (out / "runs").is_dir():
        if previous is None:
            raise ProtocolError(f"--report-only: neither {out / 'runs'} nor {previous_path} exists: nothing has run "
                                f"there; run ds-compare without --report-only first (or check --output)")
        previous["comparisons"] = comparisons.compare_to_baseline(previous)  # recomputed, never reused
        return previous
    if previous is not None and previous.get("protocol"):
        protocol = protocol_from_results(previous["protocol"], str(previous_path))
    else:
        protocol = load_protocol(args.protocol)
    if args.seeds is not None:
        protocol = dataclasses.replace(protocol, seeds=tuple(range(args.seeds)))
    methods = list(args.methods) or None
    if methods is None and previous is not None:  # the methods the study ran (ds-compare --methods, if it was given)
        ran = {r["method"].split("@", 1)[0] for r in previous.get("runs", [])}
        methods = [m.name for m in protocol.methods if m.name in ran] or None
    recorded = {r.get("run_id"): r for r in (previous or {}).get("runs", []) if r.get("status") in ("ok", "failed")}
    outcomes, missing = collect_finished(expand_runs(protocol, methods), out, recorded)
    if missing:
        CONSOLE.print(f"[yellow]--report-only: {len(missing)} of {len(missing) + len(outcomes)} runs of the "
                      f"protocol have no finished result (not run yet, or unfinished); reporting the others[/yellow]")
    paths = path_scene_folders(protocol, args.data_root)
    results = assemble_results(protocol, outcomes, "cpu", command_line(args), 0.0, paths)
    if previous is not None:  # the invocation that trained, not this one: its machine, software, evaluation, ...
        for key in ("machine", "wall_time_s", "command", "software"):
            results[key] = previous.get(key, results[key])
        if command_line(args) != results["command"]:  # e.g. --seeds 5 over runs that several invocations trained
            results["report_command"] = command_line(args) + " --report-only"
        if "evaluation" in previous:
            results["evaluation"] = stored_evaluation(previous["evaluation"], protocol, paths)
        reused = {r.get("run_id"): r.get("reused", True) for r in previous.get("runs", [])}
        for run in results["runs"]:
            run["reused"] = reused.get(run["run_id"], True)
    if missing:
        results["missing"] = missing
    return results


def _finish(results: Dict[str, Any], out: Path, start: float, figures: Optional[Figures]) -> Dict[str, Any]:
    written = write_outputs(results, out, figures)
    ok = sum(r["status"] == "ok" for r in results["runs"])
    CONSOLE.rule("ds-compare finished")
    CONSOLE.print(f"{ok}/{len(results['runs'])} runs ok, wall time {(time.perf_counter() - start) / 60:.1f} min")
    CONSOLE.print(report.main_tables(results), markup=False, soft_wrap=True)
    CONSOLE.print("Wrote:")
    for path in written:
        CONSOLE.print(f"  {path}")
    return results


def _interrupt(signum: int, frame: Any) -> None:
    """A SIGTERM handler that stops the study as Ctrl-C does."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def entrypoint(figures: Optional[Figures] = None) -> None:
    """Console script ``ds-compare`` (:func:`depth_strategies.cli.compare` passes the figures).

    SIGTERM (``kill PID``) stops it as Ctrl-C does: a study started in the background of a non-interactive shell
    ignores SIGINT (the shell sets it so), and SIGTERM's default would end the process without a word. Nothing new
    starts; with ``--jobs 1`` the run in progress is stopped (it trains again on resume), with ``--jobs N`` the runs
    in progress finish and are kept before the process exits. The handler is set here, for the command's lifetime
    only, never at import."""
    args = tyro.cli(CompareArgs)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        compare(args, figures=figures)
    except ProtocolError as err:
        CONSOLE.print(f"[red]ds-compare: error:[/red] {err}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        CONSOLE.print("[yellow]Interrupted.[/yellow] Finished runs are kept; rerun the same command to resume.")
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
