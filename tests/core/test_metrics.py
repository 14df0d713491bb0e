"""Evaluation metrics on hand-made views of 2x2 blocks."""

from __future__ import annotations

import pytest
import torch

from depth_strategies.core.metrics import DEPTH_KEY, EMPTY, METRICS, STATE_KEY, SURFACE, image_metrics

BLOCK = 8
"""Each of the 4 hand-set pixels becomes an 8x8 block (SSIM needs at least 11x11 pixels); means are unchanged."""


def blocks(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype).view(2, 2, 1).repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)


def view(median, expected, accumulation):
    outputs = {
        "rgb": torch.full((2 * BLOCK, 2 * BLOCK, 3), 0.5),
        "depth": blocks(median),
        "expected_depth": blocks(expected),
        "accumulation": blocks(accumulation),
    }
    batch = {
        "image": torch.full((2 * BLOCK, 2 * BLOCK, 3), 0.5),
        DEPTH_KEY: blocks([3.0, 4.0, 0.0, 0.0]),
        STATE_KEY: blocks([SURFACE, SURFACE, EMPTY, 0], torch.uint8),  # 0: unknown
    }
    return outputs, batch


def test_median_and_expected_depth_errors_are_both_reported_on_surface_pixels():
    outputs, batch = view([3.5, 4.0, 9.0, 9.0], [3.0, 3.0, 9.0, 9.0], [1.0, 1.0, 0.0, 0.0])
    metrics = image_metrics(outputs, batch)
    assert metrics["depth_l1"] == pytest.approx((0.5 + 0.0) / 2)
    assert metrics["depth_l1_expected"] == pytest.approx((0.0 + 1.0) / 2)


def test_the_proposal_depth_error_is_the_last_proposal_levels_on_surface_pixels():
    outputs, batch = view([3.0, 4.0, 9.0, 9.0], [3.0, 4.0, 9.0, 9.0], [1.0, 1.0, 0.0, 0.0])
    outputs["prop_depth_0"] = blocks([9.0, 9.0, 9.0, 9.0])  # the coarse level: not the one scored
    outputs["prop_depth_1"] = blocks([3.0, 5.0, 1.0, 1.0])  # off by 0 and 1 on the surface pixels
    assert image_metrics(outputs, batch)["proposal_depth_l1"] == pytest.approx(0.5)
    del outputs["prop_depth_0"], outputs["prop_depth_1"]
    assert "proposal_depth_l1" not in image_metrics(outputs, batch)  # a model without proposal levels


def test_background_accumulation_is_the_mean_opacity_of_empty_pixels_only():
    outputs, batch = view([3.0, 4.0, 9.0, 9.0], [3.0, 4.0, 9.0, 9.0], [1.0, 1.0, 0.25, 0.75])
    assert image_metrics(outputs, batch)["background_accumulation"] == pytest.approx(0.25)  # the unknown pixel: not


def test_depth_metrics_are_in_blender_units_whatever_the_scale():
    outputs, batch = view([3.5, 4.0, 9.0, 9.0], [3.0, 3.0, 9.0, 9.0], [1.0, 1.0, 0.0, 0.0])
    scaled_outputs = {k: v * 0.5 if k in ("depth", "expected_depth") else v for k, v in outputs.items()}
    scaled_batch = {**batch, DEPTH_KEY: batch[DEPTH_KEY] * 0.5}
    for name in ("depth_l1", "depth_l1_expected"):
        unscaled = image_metrics(outputs, batch)[name]
        assert image_metrics(scaled_outputs, scaled_batch, 0.5)[name] == pytest.approx(unscaled)


def test_every_new_metric_declares_its_direction():
    assert METRICS["depth_l1_expected"].better == "lower"
    assert METRICS["background_accumulation"].better == "lower"
    assert "training objective" in METRICS["weight_variance"].description
