"""Offline guarantees: things nerfstudio would otherwise fetch from the internet.

nerfacto builds an LPIPS metric whose AlexNet backbone weights torchvision downloads the first time the
model is constructed. Offline, that download fails and takes model construction down with it. Here LPIPS
is built only when the weights are already in torch's cache; otherwise it is reported as unavailable,
with one warning, and never replaced by a fake value.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import torch
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

ALEXNET_WEIGHTS_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
"""torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` (the ``DEFAULT`` that torchmetrics' LPIPS asks for)."""


class LpipsUnavailableWarning(UserWarning):
    """LPIPS is not computed because its AlexNet weights are not in torch's cache."""


def lpips_weights_path() -> Path:
    """Where torchvision looks for the AlexNet weights before downloading them."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(ALEXNET_WEIGHTS_URL).path).name


def lpips_instructions() -> str:
    """How a user with internet access gets the weights (one command, run once)."""
    return (
        "python -c \"import torchvision; torchvision.models.alexnet(weights='IMAGENET1K_V1')\" "
        f"(downloads {ALEXNET_WEIGHTS_URL} to {lpips_weights_path()})"
    )


def build_lpips() -> Optional[LearnedPerceptualImagePatchSimilarity]:
    """LPIPS (AlexNet, inputs in [0, 1]) when its weights are cached, else ``None`` and one warning."""
    if not lpips_weights_path().is_file():
        warnings.warn(
            f"LPIPS is unavailable: AlexNet weights are not at {lpips_weights_path()}, and this tool never "
            f"downloads at run time. LPIPS will be reported as unavailable. To enable it: {lpips_instructions()}",
            LpipsUnavailableWarning,
            stacklevel=2,
        )
        return None
    return LearnedPerceptualImagePatchSimilarity(normalize=True)
