"""What a training step asks of the device: every aten op it dispatches, and those that force the host to wait for
the device (a device-to-host synchronisation on CUDA), counted under a ``TorchDispatchMode``.

At nerfacto's sizes on a GPU a training step of this model takes a few tens of milliseconds and is bound by kernel
launches and host-device synchronisations rather than arithmetic, so the number of ops and of syncs is what a
strategy adds to the baseline's step time. Both are counted on whatever device the step runs on (the CPU in the
tests): which aten ops a step dispatches does not depend on the device, only what they cost does.
"""

from __future__ import annotations

import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = frozenset({
    "aten::_local_scalar_dense",  # Tensor.item(), bool(t), float(t), int(t), a Python `if` on a tensor
    "aten::nonzero",  # output size depends on the data
    "aten::masked_select",
    "aten::_unique2", "aten::unique_dim", "aten::unique_consecutive", "aten::_unique",
    "aten::equal",  # returns a Python bool
    "aten::is_nonzero",
})
"""aten ops whose output shape or value the host needs before it can go on: on CUDA each one waits for the device
(PyTorch's CUDA semantics notes, "Asynchronous execution"; ``torch.cuda.set_sync_debug_mode`` reports the same
family). Boolean-mask indexing and ``repeat_interleave`` without ``output_size`` are recognised by their arguments
(:func:`is_sync`)."""
INDEX_OPS = frozenset({"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"})
"""Indexing ops that synchronise when an index is a boolean mask (it is turned into positions with ``nonzero``)."""


def is_sync(name: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> bool:
    """Whether the aten op ``name`` called with ``args``/``kwargs`` forces a device-to-host synchronisation."""
    if name in SYNC_OPS:
        return True
    if name in INDEX_OPS and len(args) > 1 and isinstance(args[1], (list, tuple)):
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1])
    if name == "aten::repeat_interleave":
        repeats = args[1] if len(args) > 1 else (args[0] if args else None)
        return isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None
    return False


@dataclass
class OpCount:
    """What a block of code dispatched."""

    ops: int = 0
    """aten ops dispatched (each one a kernel launch or more on a GPU, for ops that compute)."""
    views: int = 0
    """Of the ops, views (``expand``, ``slice``, ``unsqueeze``, ``detach``, ...): they launch no kernel, only cost
    the host the dispatch."""
    sites: Counter = field(default_factory=Counter)
    """With ``OpCounter(sites=True)``: ops by ``file:function`` of the innermost Python frame of this package or
    nerfstudio that dispatched them; ops of the backward pass under :data:`BACKWARD_SITE`."""
    syncs: Counter = field(default_factory=Counter)
    """Host-synchronising ops, by aten name."""
    sync_sites: Counter = field(default_factory=Counter)
    """Host-synchronising ops by (aten name, ``file:line`` of the innermost Python frame of this package or
    nerfstudio that called them)."""

    @property
    def total_syncs(self) -> int:
        return sum(self.syncs.values())

    @property
    def kernels(self) -> int:
        """Ops that are not views: on a GPU, each launches a kernel (or more)."""
        return self.ops - self.views


BACKWARD_SITE = "<backward>"
"""The site of the ops that the autograd engine dispatches (the backward pass)."""


def _package_frames() -> list:
    """The frames of the current Python stack in this package or nerfstudio, this module's excluded."""
    return [f for f in traceback.extract_stack() if f.filename != __file__
            and ("depth_strategies" in f.filename or "nerfstudio" in f.filename)]


class OpCounter(TorchDispatchMode):
    """``with OpCounter() as counter: ...``: counts into ``counter.count`` (:class:`OpCount`); with ``sites=True``
    also where each op came from (:attr:`OpCount.sites`: a stack walk per op, for finding what to fuse)."""

    def __init__(self, sites: bool = False) -> None:
        super().__init__()
        self.count = OpCount()
        self.record_sites = sites

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        self.count.ops += 1
        self.count.views += bool(func.is_view)
        if self.record_sites:
            if torch._C._current_autograd_node() is not None:
                self.count.sites[BACKWARD_SITE] += 1
            else:
                frames = _package_frames()
                where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "<elsewhere>"
                self.count.sites[where] += 1
        if is_sync(name, args, kwargs):
            self.count.syncs[name] += 1
            frames = _package_frames()
            if frames:
                self.count.sync_sites[(name, f"{Path(frames[-1].filename).name}:{frames[-1].lineno}")] += 1
        return func(*args, **kwargs)


def count_training_step(loop: Any, sites: bool = False) -> OpCount:
    """The ops of one training step of ``loop`` (:class:`depth_strategies.core.training.TrainingLoop`): the batch,
    the forward pass, the loss and the backward pass, as ``TrainingLoop.run`` does them (the optimizer step, the
    same for every method, is left out). ``sites``: also count them by where they came from (:class:`OpCounter`)."""
    with OpCounter(sites=sites) as counter:
        loop.optimizers.zero_grad_all()
        _, loss_dict, _ = loop.pipeline.get_train_loss_dict(step=loop.step)
        torch.stack(list(loss_dict.values())).sum().backward()
    loop.optimizers.zero_grad_all()
    return counter.count
