"""A faster torch hash grid with exactly the forward values of nerfstudio's (instant-ngp's multiresolution hash
encoding, Mueller et al. 2022, eq. 4; nerfstudio's ``HashEncoding.pytorch_fwd`` is the slow reference beside it).

nerfstudio's torch path hashes each of the 8 cell corners separately (8 x 3 int64 multiplications, 16 xors, 8
remainders), gathers each corner with its own advanced index, and interpolates strided slices. The same values
come from fewer, larger kernels:

* one int32 multiplication per axis and corner side (6 instead of 24): the hash keeps only the low
  ``log2_hashmap_size`` bits of ``x * 1 ^ y * P1 ^ z * P2``, and those bits of a product are the same in 32-bit
  wrapping arithmetic as in nerfstudio's int64 arithmetic (multiplication is exact modulo 2^32);
* ``h & (T - 1)`` for nerfstudio's ``h % T`` (equal for every integer, negative ones included, when T is a power
  of two, which ``2 ** log2_hashmap_size`` is);
* one gather of all 8 corners, each table row (2 features) read as one complex64 value;
* the trilinear interpolation in nerfstudio's own formula and order of operations, on contiguous corner
  arrays, so every forward value is bit-identical.

Gradients differ only by the order in which the gather's backward adds up contributions to the same table entry
(measured: within 1e-5 of nerfstudio's; tests/core/test_hash_grid.py).
"""

from __future__ import annotations

import types
from typing import Callable, List, Tuple

import torch
from jaxtyping import Float, Int
from nerfstudio.field_components.encodings import HashEncoding
from torch import Tensor

PRIMES: Tuple[int, int, int] = (1, 2654435761, 805459861)
"""instant-ngp's spatial hash primes (Mueller et al. 2022, sec. 3; the constants of nerfstudio's ``hash_fn``)."""
MAX_LOG2_HASHMAP_SIZE = 31
"""The int32 hash is exact for tables of up to 2^31 entries per level (the sign bit is never kept)."""


def as_int32(value: int) -> int:
    """``value`` modulo 2^32 as a signed 32-bit integer (the same low 32 bits)."""
    value %= 2**32
    return value - 2**32 if value >= 2**31 else value


def corner_hashes(
    ceil: Int[Tensor, "3 *bs num_levels"],
    floor: Int[Tensor, "3 *bs num_levels"],
    table_size: int,
    level_offsets: Int[Tensor, "num_levels"],  # noqa: F821
) -> Int[Tensor, "8 *bs num_levels"]:
    """Row of the hash table of each of the 8 corners of each point's cell, in nerfstudio's corner order.

    Corner k takes x, y, z from the ceil (c) or floor (f) of the scaled position: 0 = ccc, 1 = cfc, 2 = ffc,
    3 = fcc, 4 = ccf, 5 = cff, 6 = fff, 7 = fcf (nerfstudio's ``hashed_0`` ... ``hashed_7``). ``ceil`` and
    ``floor`` are int32; ``level_offsets`` is the first row of each level.
    """
    p1, p2 = as_int32(PRIMES[1]), as_int32(PRIMES[2])
    xc, xf = ceil[0] * PRIMES[0], floor[0] * PRIMES[0]
    yc, yf = ceil[1] * p1, floor[1] * p1
    zc, zf = ceil[2] * p2, floor[2] * p2
    xy = torch.stack([xc ^ yc, xc ^ yf, xf ^ yf, xf ^ yc])
    hashed = torch.cat([xy ^ zc, xy ^ zf])
    return (hashed & (table_size - 1)) + level_offsets.to(device=hashed.device, dtype=hashed.dtype)


def gather_rows(table: Float[Tensor, "rows features"], rows: Int[Tensor, "*shape"]) -> Float[Tensor, "*shape features"]:
    """``table[rows]``; a row of 2 float32 features is read as one complex64 value (one 8-byte load), except under
    ``torch.compile``, whose code generation does not support complex numbers."""
    flat = rows.reshape(-1)
    if table.shape[-1] == 2 and table.dtype == torch.float32 and not torch.compiler.is_compiling():
        return torch.view_as_real(torch.view_as_complex(table).index_select(0, flat)).view(*rows.shape, 2)
    return table.index_select(0, flat).view(*rows.shape, table.shape[-1])


def hash_encode(
    positions: Float[Tensor, "*bs 3"],
    hash_table: Float[Tensor, "rows features"],
    scalings: Float[Tensor, "num_levels"],  # noqa: F821
    table_size: int,
    level_offsets: Int[Tensor, "num_levels"],  # noqa: F821
) -> Float[Tensor, "*bs num_levels_x_features"]:
    """Multiresolution hash encoding of ``positions`` (in [0, 1]): bit-identical to nerfstudio's
    ``HashEncoding.pytorch_fwd`` with the same table, scalings (grid resolution of each level), table size per
    level and level offsets."""
    if table_size & (table_size - 1) or table_size > 2**MAX_LOG2_HASHMAP_SIZE:
        raise ValueError(f"hash table size {table_size} is not a power of two <= 2^{MAX_LOG2_HASHMAP_SIZE}")
    scaled = positions[..., None, :] * scalings.view(-1, 1).to(positions.device)  # [*bs, L, 3]
    floored = torch.floor(scaled)
    offset = (scaled - floored).movedim(-1, 0).unsqueeze(-1)  # [3, *bs, L, 1]
    ceil = torch.ceil(scaled).to(torch.int32).movedim(-1, 0)
    floor = floored.to(torch.int32).movedim(-1, 0)
    f_0, f_1, f_2, f_3, f_4, f_5, f_6, f_7 = gather_rows(hash_table, corner_hashes(ceil, floor, table_size,
                                                                                   level_offsets))
    ox, oy, oz = offset
    # nerfstudio's interpolation, term for term (ceil corners weighted by the offset from the floor)
    f_03 = f_0 * ox + f_3 * (1 - ox)
    f_12 = f_1 * ox + f_2 * (1 - ox)
    f_56 = f_5 * ox + f_6 * (1 - ox)
    f_47 = f_4 * ox + f_7 * (1 - ox)
    f0312 = f_03 * oy + f_12 * (1 - oy)
    f4756 = f_47 * oy + f_56 * (1 - oy)
    encoded = f0312 * oz + f4756 * (1 - oz)  # [*bs, L, F]
    return torch.flatten(encoded, start_dim=-2, end_dim=-1)


def fused_pytorch_fwd(grid: HashEncoding, in_tensor: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs output_dim"]:
    """``grid.pytorch_fwd`` computed by :func:`hash_encode` (bound to a grid by :func:`use_fused_hash_grids`)."""
    return hash_encode(in_tensor, grid.hash_table, grid.scalings, grid.hash_table_size, grid.hash_offset)


def torch_hash_grids(model: torch.nn.Module) -> List[HashEncoding]:
    """Every nerfstudio torch ``HashEncoding`` in ``model`` (tiny-cuda-nn grids are left out)."""
    return [m for m in model.modules() if isinstance(m, HashEncoding) and m.tcnn_encoding is None]


def use_fused_hash_grids(model: torch.nn.Module) -> int:
    """Make every torch hash grid of ``model`` compute its forward pass with :func:`hash_encode`; returns how many."""
    grids = torch_hash_grids(model)
    for grid in grids:
        grid.pytorch_fwd = types.MethodType(fused_pytorch_fwd, grid)  # the grid keeps its parameters: same checkpoints
    return len(grids)


def compile_hash_grids(model: torch.nn.Module, without_grad_only: bool = False) -> int:
    """Replace the forward pass of every torch ``HashEncoding`` in ``model`` by its ``torch.compile`` version
    (dynamic shapes: one compilation serves every batch and chunk size); returns how many were compiled.

    Compiles whichever forward pass the grid has (the fused one of :func:`use_fused_hash_grids` when the model
    uses it): the compiler fuses its elementwise kernels (hash, gather, trilinear weights) into a few loops.
    With ``without_grad_only`` the compiled version runs only where autograd is off (evaluation, ``ns-render``,
    the viewer) and training keeps the eager one. tiny-cuda-nn grids are left alone.
    """
    grids = torch_hash_grids(model)
    for grid in grids:
        compiled = torch.compile(grid.pytorch_fwd, dynamic=True)
        grid.pytorch_fwd = GradModeDispatch(grid.pytorch_fwd, compiled) if without_grad_only else compiled
    return len(grids)


class GradModeDispatch:
    """A hash grid forward pass that runs ``without_grad`` when autograd is off and ``with_grad`` otherwise."""

    def __init__(self, with_grad: Callable[[Tensor], Tensor], without_grad: Callable[[Tensor], Tensor]) -> None:
        self.with_grad = with_grad
        self.without_grad = without_grad

    def __call__(self, in_tensor: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs output_dim"]:
        return self.with_grad(in_tensor) if torch.is_grad_enabled() else self.without_grad(in_tensor)
