"""The profile summary ranks a profiler's ops by self time, per training step, on the clock asked for."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from depth_strategies.study.profile import profile_table, top_ops


def event(key, count, cpu_us, device_us):
    return SimpleNamespace(key=key, count=count, self_cpu_time_total=cpu_us, self_device_time_total=device_us)


EVENTS = [event("aten::mm", 4, 600.0, 3000.0), event("aten::add", 8, 300.0, 1000.0),
          event("aten::item", 2, 100.0, 0.0)]


def test_top_ops_rank_by_self_time_and_divide_by_the_profiled_steps():
    ops = top_ops(EVENTS, steps=2, clock="cpu")
    assert [op.name for op in ops] == ["aten::mm", "aten::add", "aten::item"]
    mm = ops[0]
    assert mm.calls == 2 and mm.self_cpu_ms == pytest.approx(0.3) and mm.self_device_ms == pytest.approx(1.5)
    assert [op.share for op in ops] == pytest.approx([0.6, 0.3, 0.1])  # of 1000 us of host self time


def test_device_clock_leaves_out_ops_with_no_kernel_time_and_keeps_only_the_top():
    ops = top_ops(EVENTS, steps=1, clock="device", top=1)
    assert [(op.name, op.share) for op in ops] == [("aten::mm", pytest.approx(0.75))]
    assert "aten::item" not in [op.name for op in top_ops(EVENTS, steps=1, clock="device")]


def test_a_profile_of_no_steps_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        top_ops(EVENTS, steps=0)


def test_profile_table_has_one_section_per_clock_with_a_row_per_op():
    summary = {"cpu": [vars(op) for op in top_ops(EVENTS, 1, "cpu")],
               "device": [vars(op) for op in top_ops(EVENTS, 1, "device")]}
    lines = profile_table("depth-hard", summary)
    assert lines.count("| op | calls | self CPU ms | self device ms | share |") == 2
    assert "| `aten::mm` | 4.0 | 0.600 | 3.000 | 60.0 % |" in lines
    assert "| `aten::mm` | 4.0 | 0.600 | 3.000 | 75.0 % |" in lines
