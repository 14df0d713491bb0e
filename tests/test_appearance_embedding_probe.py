"""scripts/appearance_embedding_probe.py: each test view rendered with the mean, zero and every training image's
appearance vector, on a tiny pipeline (untrained: the plumbing, not a result)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.conftest import REPO, tiny_config


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("appearance_embedding_probe",
                                                  REPO / "scripts" / "appearance_embedding_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def pipeline(tiny_scene):
    torch.manual_seed(0)
    pipeline = tiny_config("depth-baseline", tiny_scene).pipeline.setup(device="cpu", test_mode="test")
    pipeline.eval()
    return pipeline


def test_every_image_as_sets_every_vector_and_restores_the_learned_ones(probe, pipeline):
    table = probe.embedding_table(pipeline.model.field)
    learned = table.weight.detach().clone()
    vector = torch.arange(table.weight.shape[1], dtype=table.weight.dtype)
    with probe.every_image_as(table, vector):
        assert torch.equal(table.weight, vector.expand_as(learned))
        assert torch.allclose(table.weight.mean(dim=0), vector)  # what a test view is rendered with
    assert torch.equal(table.weight, learned)


def test_a_model_whose_vectors_are_all_the_same_scores_the_same_with_each(probe, pipeline):
    table = probe.embedding_table(pipeline.model.field)
    with torch.no_grad():
        table.weight.copy_(table.weight[0].expand_as(table.weight))
    before = table.weight.detach().clone()
    row = probe.probe_view(pipeline, 0)
    images = [k for k in row if k.startswith("image ")]
    assert len(images) == table.weight.shape[0] and {"mean", "zeros"} <= set(row)
    assert all(row[k] == pytest.approx(row["mean"], abs=1e-6) for k in images)
    assert torch.equal(table.weight, before)
    text = probe.markdown({"r_0": row})
    assert text.splitlines()[2].startswith(f"| r_0 | {row['mean']:.2f} |") and "| 0.00 |" in text


def test_a_model_without_the_embedding_is_refused_with_the_reason(probe, tiny_scene):
    config = tiny_config("depth-baseline", tiny_scene, **{"pipeline.model.use_appearance_embedding": False})
    pipeline = config.pipeline.setup(device="cpu", test_mode="test")
    with pytest.raises(SystemExit, match="no appearance embedding"):
        probe.embedding_table(pipeline.model.field)
