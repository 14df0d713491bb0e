"""Provenance: the code and the resolved config behind each run; a changed default makes finished runs stale."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from depth_strategies import methods
from depth_strategies.study import provenance
from depth_strategies.study.runs import RunSpec


def spec(method="depth-soft", overrides=()):
    return RunSpec("builtin", method, method, None, tuple(overrides), 0, 10)


def test_the_source_hash_follows_the_training_code_and_ignores_the_tables(tmp_path):
    package = tmp_path / "depth_strategies"
    shutil.copytree(provenance.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = provenance.hash_sources(package)
    report = package / "study" / "report.py"
    report.write_text(report.read_text() + "\n# a table changed\n")
    assert provenance.hash_sources(package) == before
    losses = package / "core" / "losses.py"
    original = losses.read_text()
    losses.write_text(original.replace('"""', '""" A docstring reworded.', 1) + "\n# a comment\n")
    assert provenance.hash_sources(package) == before  # docstrings and comments change no run
    sizes = package / "configs" / "sizes.yaml"
    sizes.write_text("# a comment\n" + sizes.read_text())
    assert provenance.hash_sources(package) == before
    losses.write_text(original + "\nA_NEW_CONSTANT = 1.0\n")
    assert provenance.hash_sources(package) != before
    losses.write_text(original)
    sizes.write_text(sizes.read_text().replace("cpu_seconds_per_iteration: 0.165", "cpu_seconds_per_iteration: 0.2"))
    assert provenance.hash_sources(package) != before


def test_a_field_docstring_is_left_out_of_the_source_but_a_string_default_is_not(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('class C:\n    x: int = 1\n    """The x."""\n')
    plain = provenance.normalised_source(module)
    module.write_text('class C:\n    x: int = 1\n    """The x, in units."""\n')
    assert provenance.normalised_source(module) == plain
    module.write_text('class C:\n    x: str = "a"\n    """The x."""\n')
    with_a = provenance.normalised_source(module)
    module.write_text('class C:\n    x: str = "b"\n    """The x."""\n')
    assert provenance.normalised_source(module) != with_a != plain


def test_the_config_hash_sees_an_override_and_a_changed_method_default(monkeypatch):
    plain = provenance.expected(spec())
    assert provenance.expected(spec()) == plain  # deterministic
    assert provenance.expected(spec(overrides=[("pipeline.model.soft_depth_mult", 0.5)]))["config_hash"] != \
        plain["config_hash"]
    fields = dict(methods.METHOD_FIELDS["depth-soft"], soft_depth_mult=0.5)
    monkeypatch.setitem(methods.METHOD_FIELDS, "depth-soft", fields)
    changed = provenance.expected(spec())
    assert changed["spec_fingerprint"] == plain["spec_fingerprint"]  # the spec alone cannot tell
    assert changed["config_hash"] != plain["config_hash"] and changed["fingerprint"] != plain["fingerprint"]


def test_staleness_names_what_changed():
    wanted = provenance.expected(spec())
    made = {"provenance": {"config_hash": wanted["config_hash"], "source_hash": wanted["source_hash"]}}
    assert provenance.staleness(made, wanted) is None
    assert provenance.staleness({"provenance": {**made["provenance"], "source_hash": "x"}}, wanted) == \
        "other training code"
    assert provenance.staleness({"provenance": {"config_hash": "y", "source_hash": "x"}}, wanted) == \
        "another method config and other training code"
    assert "version 0.4" in provenance.staleness({}, wanted)


def test_rerunning_a_finished_study_after_a_method_default_changed_reports_its_runs_stale(tmp_path, monkeypatch,
                                                                                         capsys):
    from depth_strategies.study.compare import execute
    from depth_strategies.study.protocol import load_protocol
    from depth_strategies.study.runs import expand_runs

    protocol = load_protocol("quick")
    runs = [r for r in expand_runs(protocol) if r.method == "depth-soft"][:1]
    trained = []

    def runner(job, log_path, on_progress):  # a worker that records the provenance it was given
        trained.append(job["run_id"])
        result = {"status": "ok", "fingerprint": job["fingerprint"], "views": [], "train": {}, "render": {},
                  "provenance": job["provenance"]}
        (Path(job["run_dir"]) / "result.json").write_text(json.dumps(result))
        return 0

    (tmp_path / "transforms_test.json").write_text(json.dumps({"frames": [{}]}))
    out = tmp_path / "out"
    execute(protocol, runs, {"builtin": tmp_path}, out, "cpu", runner=runner)
    execute(protocol, runs, {"builtin": tmp_path}, out, "cpu", runner=runner)
    assert len(trained) == 1  # finished and current: reused

    fields = dict(methods.METHOD_FIELDS["depth-soft"], soft_depth_mult=0.5)
    monkeypatch.setitem(methods.METHOD_FIELDS, "depth-soft", fields)
    capsys.readouterr()
    (reused,) = execute(protocol, runs, {"builtin": tmp_path}, out, "cpu", runner=runner, reuse_stale=True)
    assert len(trained) == 1 and reused.result["stale"] == "another method config"
    assert f"stale {runs[0].run_id}: another method config" in capsys.readouterr().out
    (again,) = execute(protocol, runs, {"builtin": tmp_path}, out, "cpu", runner=runner)
    assert len(trained) == 2 and not again.reused  # by default a stale run is trained again
    assert json.loads((out / "runs" / runs[0].run_id / "result.json").read_text())["provenance"]["config_hash"] == \
        provenance.expected(runs[0])["config_hash"]


def test_a_worker_records_what_its_fingerprint_was_made_from(tmp_path):
    from depth_strategies.study.worker import run_provenance

    wanted = provenance.expected(spec())
    job = {"run": dataclasses.asdict(spec()), "provenance": wanted}
    made = run_provenance(job, "cpu")
    assert made["config_hash"] == wanted["config_hash"] and made["source_hash"] == wanted["source_hash"]
    assert made["spec_fingerprint"] == wanted["spec_fingerprint"] and made["common_random_numbers"] is True
    assert {"package_version", "git", "platform", "torch_threads", "device"} <= set(made)


def test_the_config_hash_is_the_same_after_nerfstudio_set_up_a_run_in_the_same_process(tiny_capture, tmp_path):
    # nerfstudio writes into a pixel-sampler config while it sets up a run; a worker hashes its config after training
    from depth_strategies.core.training import TrainingLoop
    from depth_strategies.study.worker import build_config

    spec = RunSpec(scene="room", method="depth-nerfacto", base=None, external="depth-nerfacto",
                   overrides=tuple(methods.load_size_profile("tiny").items()), seed=0, iterations=1)
    before = provenance.expected(spec)["config_hash"]
    job = {"run": dataclasses.asdict(spec), "data": str(tiny_capture), "output_dir": str(tmp_path / "out"),
           "device": "cpu"}
    TrainingLoop(build_config(job), "cpu").run(1)
    assert provenance.config_hash(provenance.resolved_config(dataclasses.asdict(spec))) == before
