"""The shipped mapping (configs/depth-kinds.json): it regenerates identically from docs/results/, its pick rule
follows the project's standard, and the README's table is the one it gives."""

from __future__ import annotations

import copy

from depth_strategies.inspect import mapping
from tests.conftest import REPO


def test_mapping_regenerates_identically_from_the_committed_results():
    shipped = (REPO / "depth_strategies" / "configs" / mapping.MAPPING_FILE).read_text()
    assert mapping.render(mapping.build(REPO)) == shipped, "run python -m depth_strategies.inspect.mapping"


def test_readme_holds_the_table_the_mapping_gives():
    assert mapping.readme_table(mapping.shipped_mapping()) in (REPO / "README.md").read_text()


def comparison(seeds, mean, low=None, high=None, established=None):
    return {"seeds": seeds, "per_seed": {}, "mean": mean, "interval": None if low is None else [low, high],
            "established": established}


def row(methods, scene="s"):
    return {"study": "x", "protocol": "p", "scene": scene, "condition": None, "regime": {"sizes": "cpu"},
            "reference": {"name": "depth-baseline", "registered": "depth-baseline", "overrides": {}},
            "methods": {name: {"name": name, "registered": name, "overrides": {}, "psnr": c, "depth_l1": c}
                        for name, c in methods.items()}}


def test_an_established_gain_is_picked_over_a_larger_mean_that_is_not():
    rows = [row({"a": comparison(5, 0.5, 0.1, 0.9, "gain"), "b": comparison(2, 2.0, -1.0, 5.0)})]
    choice = mapping.pick(rows, "psnr")
    assert (choice["method"], choice["status"]) == ("a", "established")


def test_without_an_established_gain_the_best_mean_is_picked_and_says_so():
    choice = mapping.pick([row({"a": comparison(2, 0.5, -1, 2), "b": comparison(1, 0.8)})], "psnr")
    assert (choice["method"], choice["status"]) == ("b", "not established")
    assert "1 seed paired (a claim needs 5)" in choice["why"]


def test_when_no_method_beats_the_reference_the_reference_is_picked_with_the_established_losses():
    choice = mapping.pick([row({"a": comparison(3, -0.5, -1, 0), "b": comparison(5, -0.6, -0.9, -0.3, "loss"),
                                "c": comparison(5, -0.1, -0.5, +0.3)})], "psnr")
    assert (choice["method"], choice["status"]) == ("depth-baseline", "not established")
    assert [(x["method"], x["mean"]) for x in choice["established_losses"]] == [("b", -0.6)]
    cell = mapping.readme_table({"order": ["k"], "kinds": {"k": {"describes": "d", "levels": [
        {"level": None, "conditions": [], "pick": {"psnr": choice, "depth_l1": choice}}]}}}).splitlines()[2]
    assert "`depth-baseline`: no method's mean is better; established losses: `b` -0.60 [-0.90, -0.30]" in cell


def test_methods_without_a_paired_seed_are_never_picked():
    choice = mapping.pick([row({"a": comparison(0, None)})], "psnr")
    assert choice["method"] is None


def test_a_kind_no_study_measured_has_no_pick():
    assert mapping.pick([], "psnr")["status"] == "not studied"
    shipped = mapping.shipped_mapping()
    for kind in ("flying", "lowres", "quantise"):
        assert shipped["kinds"][kind]["levels"][0]["pick"]["psnr"]["method"] is None


def test_lower_is_better_for_depth_l1():
    rows = [row({"a": comparison(5, -0.02, -0.03, -0.01, "gain"), "b": comparison(5, -0.05, -0.06, -0.04, "gain")})]
    assert mapping.pick(rows, "depth_l1")["method"] == "b"


def test_an_established_loss_elsewhere_stays_beside_the_pick():
    gain = row({"a": comparison(5, 0.5, 0.1, 0.9, "gain")}, scene="one")
    loss = row({"a": comparison(5, -1.0, -1.5, -0.5, "loss")}, scene="two")
    choice = mapping.pick([gain, copy.deepcopy(loss)], "psnr")
    assert choice["method"] == "a" and choice["established_losses_elsewhere"][0]["scene"] == "two"


def test_the_mapping_is_package_data():
    import fnmatch
    import tomllib

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    path = f"configs/{mapping.MAPPING_FILE}"
    assert any(fnmatch.fnmatch(path, g) for g in globs["depth_strategies"]), "a wheel would not ship the mapping"
