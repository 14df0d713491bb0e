"""Helpers of the scene tests."""

from __future__ import annotations

import math

import numpy as np

from depth_strategies.scenes.render import CAMERA_RADIUS, look_at


def orbit(elev_deg: float, azim_deg: float, radius: float = CAMERA_RADIUS) -> np.ndarray:
    e, a = math.radians(elev_deg), math.radians(azim_deg)
    return look_at(radius * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)]))

