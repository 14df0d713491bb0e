"""The one colour rule (``core/colour.py``) on hand-made arrays."""

from __future__ import annotations

import numpy as np

from depth_strategies.core import colour


def test_to_uint8_clips_and_rounds_to_the_nearest_level():
    image = np.array([-0.1, 0.0, 0.5, 1.0, 1.2, 100.4 / 255])
    assert colour.to_uint8(image).tolist() == [0, 0, 128, 255, 255, 100]


def test_depth_range_prefers_ground_truth_surface_and_falls_back_to_rendered_foreground():
    gt = np.array([[2.0, 3.0], [4.0, 9.0]])
    surface = np.array([[True, True], [True, False]])
    low, high = colour.depth_range(gt, surface)
    assert (low, high) == (np.percentile([2.0, 3.0, 4.0], 2), np.percentile([2.0, 3.0, 4.0], 98))
    rendered = (np.array([[5.0, 7.0]]), np.array([[0.9, 0.1]]))  # only the first pixel is foreground
    low, high = colour.depth_range(rendered=[rendered])
    assert low == 5.0 and high > low
    assert colour.depth_range() == colour.EMPTY_RANGE
