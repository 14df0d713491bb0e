"""The hash grids of the model: the fused torch grid (``core/hash_grid.hash_encode``) against nerfstudio's torch
``HashEncoding.pytorch_fwd`` as the slow reference, forward and backward; the optional compiled grids."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.field_components.encodings import HashEncoding

from depth_strategies.core.hash_grid import (
    PRIMES,
    as_int32,
    compile_hash_grids,
    corner_hashes,
    gather_rows,
    hash_encode,
    torch_hash_grids,
    use_fused_hash_grids,
)
from depth_strategies.core.training import TrainingLoop
from tests.conftest import tiny_config


def fused(grid: HashEncoding, x: torch.Tensor) -> torch.Tensor:
    return hash_encode(x, grid.hash_table, grid.scalings, grid.hash_table_size, grid.hash_offset)


@pytest.mark.parametrize(
    "levels,log2_size,max_res",
    [(4, 10, 64), (12, 16, 512), (5, 17, 128), (16, 19, 2048)],  # tiny-ish, 'cpu' field, proposal net, defaults
)
def test_fused_forward_is_bit_identical_to_nerfstudios_torch_hash_grid(levels, log2_size, max_res):
    torch.manual_seed(0)
    grid = HashEncoding(num_levels=levels, max_res=max_res, log2_hashmap_size=log2_size, implementation="torch")
    x = torch.rand(4000, 3)
    x[:10] = 0.0  # nerfacto's fields move every position outside the scene box to the origin
    x[10:20] = torch.tensor([0.5, 0.25, 0.125])  # on grid vertices of every level: ceil == floor
    x[20] = torch.tensor([1.0, 1.0, 1.0])
    assert torch.equal(fused(grid, x), grid.pytorch_fwd(x))


def test_fused_forward_keeps_batch_dimensions():
    torch.manual_seed(0)
    grid = HashEncoding(num_levels=3, min_res=4, max_res=32, log2_hashmap_size=8, implementation="torch")
    x = torch.rand(5, 7, 3)
    out = fused(grid, x)
    assert out.shape == (5, 7, 3 * 2)
    assert torch.equal(out, grid.pytorch_fwd(x))


@pytest.mark.parametrize("log2_size", [10, 19])
def test_fused_gradients_equal_nerfstudios_up_to_summation_order(log2_size):
    torch.manual_seed(0)
    grid = HashEncoding(num_levels=8, max_res=256, log2_hashmap_size=log2_size, implementation="torch")
    x = torch.rand(20000, 3)
    upstream = torch.randn(20000, 16)
    grid.pytorch_fwd(x).backward(upstream)
    reference = grid.hash_table.grad.clone()
    grid.hash_table.grad = None
    fused(grid, x).backward(upstream)
    assert reference.abs().max() > 1.0  # many points share coarse-level entries: a real accumulation
    torch.testing.assert_close(grid.hash_table.grad, reference, rtol=1e-5, atol=1e-5)


def test_int32_corner_hash_equals_the_exact_integer_hash():
    """Python's unbounded integers as the reference: (x * 1 ^ y * P1 ^ z * P2) mod T, plus the level offset."""
    table_size, offsets = 2**19, torch.tensor([0, 2**19])
    points = [(0, 0, 0), (1, 2, 3), (2048, 2047, 1999), (123, 4567, 890)]
    ceil = torch.tensor([[p[axis] + 1 for p in points] for axis in range(3)], dtype=torch.int32)[:, :, None]
    floor = torch.tensor([[p[axis] for p in points] for axis in range(3)], dtype=torch.int32)[:, :, None]
    ceil, floor = ceil.expand(3, 4, 2), floor.expand(3, 4, 2)  # 4 points x 2 levels
    hashes = corner_hashes(ceil, floor, table_size, offsets)
    corners = ["ccc", "cfc", "ffc", "fcc", "ccf", "cff", "fff", "fcf"]  # nerfstudio's hashed_0 ... hashed_7
    for k, corner in enumerate(corners):
        for i, p in enumerate(points):
            xyz = [p[a] + 1 if corner[a] == "c" else p[a] for a in range(3)]
            expected = (xyz[0] * PRIMES[0] ^ xyz[1] * PRIMES[1] ^ xyz[2] * PRIMES[2]) % table_size
            assert hashes[k, i, 0].item() == expected
            assert hashes[k, i, 1].item() == expected + 2**19


def test_as_int32_keeps_the_low_32_bits():
    assert as_int32(2654435761) == 2654435761 - 2**32
    assert as_int32(805459861) == 805459861
    assert as_int32(2**32 + 5) == 5


def test_gather_reads_rows_of_any_width():
    table = torch.arange(12.0).view(4, 3)
    assert torch.equal(gather_rows(table, torch.tensor([[3, 0]])), table[torch.tensor([[3, 0]])])
    pairs = torch.arange(8.0).view(4, 2)
    assert torch.equal(gather_rows(pairs, torch.tensor([2, 2, 1])), pairs[torch.tensor([2, 2, 1])])


def test_a_table_size_that_is_not_a_power_of_two_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        hash_encode(torch.rand(3, 3), torch.zeros(24, 2), torch.tensor([4.0, 8.0]), 12, torch.tensor([0, 12]))


def test_the_model_uses_the_fused_grids_by_default_with_unchanged_checkpoint_keys(tiny_scene):
    fused_loop = TrainingLoop(tiny_config("depth-baseline", tiny_scene), "cpu")
    plain_loop = TrainingLoop(tiny_config("depth-baseline", tiny_scene, **{"pipeline.model.fused_hash_grids": False}),
                              "cpu")
    fused_grids = torch_hash_grids(fused_loop.pipeline.model)
    assert len(fused_grids) == 3  # the field and two proposal networks
    assert all(g.pytorch_fwd.__func__.__name__ == "fused_pytorch_fwd" for g in fused_grids)
    assert all(g.pytorch_fwd.__func__ is HashEncoding.pytorch_fwd for g in torch_hash_grids(plain_loop.pipeline.model))
    assert fused_loop.pipeline.state_dict().keys() == plain_loop.pipeline.state_dict().keys()
    assert use_fused_hash_grids(torch.nn.Linear(2, 2)) == 0


@pytest.mark.slow
def test_compiled_hash_grid_matches_the_eager_one_forward_and_backward():
    torch.manual_seed(0)
    grid = HashEncoding(num_levels=4, min_res=4, max_res=64, log2_hashmap_size=10, implementation="torch")
    holder = torch.nn.Sequential(grid)
    use_fused_hash_grids(holder)
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


@pytest.mark.slow
def test_a_model_with_compiled_hash_grids_trains(tiny_scene):
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hybrid", tiny_scene, **{"pipeline.model.compile_hash_grids": True}), "cpu")
    grids = torch_hash_grids(loop.pipeline.model)
    assert len(grids) == 3  # the field and two proposal networks
    assert all(getattr(g.pytorch_fwd, "_torchdynamo_orig_callable", None) is not None for g in grids)
    loop.run(2)


@pytest.mark.slow
def test_compiling_for_rendering_keeps_every_rendered_value_and_trains_eagerly(tiny_scene):
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hybrid", tiny_scene), "cpu")
    loop.run(3)
    model = loop.pipeline.model
    camera, _ = loop.pipeline.datamanager.fixed_indices_eval_dataloader.get_camera(image_idx=0)
    loop.pipeline.eval()
    with torch.no_grad():
        expected = model.get_outputs_for_camera(camera)
        assert compile_hash_grids(model, without_grad_only=True) == 3
        rendered = model.get_outputs_for_camera(camera)
    for name in ("rgb", "depth", "accumulation"):
        assert torch.equal(rendered[name], expected[name]), name
    loop.pipeline.train()
    loop.run(2)


def test_the_compile_for_rendering_field_compiles_only_the_pass_without_gradients(tiny_scene):
    loop = TrainingLoop(tiny_config("depth-soft", tiny_scene, **{"pipeline.model.compile_for_rendering": True}), "cpu")
    for grid in torch_hash_grids(loop.pipeline.model):
        assert grid.pytorch_fwd.with_grad.__func__.__name__ == "fused_pytorch_fwd"  # training stays eager
        assert getattr(grid.pytorch_fwd.without_grad, "_torchdynamo_orig_callable", None) is not None
