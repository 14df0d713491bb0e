"""The optional compiled hash grids (``compile_hash_grids``): the same outputs and gradients as nerfstudio's torch
hash grid, and a model that builds and trains with them."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.field_components.encodings import HashEncoding

from depth_strategies.core.model import compile_hash_grids
from depth_strategies.core.training import TrainingLoop
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_compiled_hash_grid_matches_the_eager_one_forward_and_backward():
    torch.manual_seed(0)
    grid = HashEncoding(num_levels=4, min_res=4, max_res=64, log2_hashmap_size=10, implementation="torch")
    holder = torch.nn.Sequential(grid)
    x = torch.rand(2000, 3)
    eager_out = grid(x)
    eager_out.square().sum().backward()
    eager_grad = grid.hash_table.grad.clone()
    grid.hash_table.grad = None
    assert compile_hash_grids(holder) == 1
    for n in (2000, 777):  # dynamic shapes: one compilation, any batch size
        out = grid(x[:n])
        assert torch.equal(out, eager_out[:n])
    grid(x).square().sum().backward()
    assert torch.allclose(grid.hash_table.grad, eager_grad, rtol=1e-4, atol=1e-4)


def test_a_model_with_compiled_hash_grids_trains(tiny_scene):
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hybrid", tiny_scene, **{"pipeline.model.compile_hash_grids": True}), "cpu")
    grids = [m for m in loop.pipeline.model.modules() if isinstance(m, HashEncoding)]
    assert len(grids) == 3  # the field and two proposal networks
    assert all(getattr(g.pytorch_fwd, "_torchdynamo_orig_callable", None) is not None for g in grids)
    loop.run(2)
