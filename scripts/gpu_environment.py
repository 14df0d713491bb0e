"""The environment of a GPU measurement, written by both GPU scripts (scripts/gpu_check.sh, scripts/gpu_study.sh).

Usage: python scripts/gpu_environment.py OUT.json DEVICE SCRIPT_NAME SMOKE_FLAG

Writes Python, platform, torch, CUDA, the GPU, tiny-cuda-nn, CPU count and the git commit to OUT.json and prints
them; exits with an error naming SMOKE_FLAG (e.g. GPU_STUDY_DEVICE=cpu) when DEVICE is cuda and there is none.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch
from nerfstudio.utils.external import TCNN_EXISTS


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    out, device, script, smoke_flag = sys.argv[1:5]
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "tiny_cuda_nn": TCNN_EXISTS,
           "cpu_count": os.cpu_count(), "git_commit": git_commit()}
    Path(out).write_text(json.dumps(env, indent=2))
    print(json.dumps(env, indent=2))
    if device == "cuda" and not env["cuda_available"]:
        sys.exit(f"{script}: no CUDA device: this script is for a machine with a GPU ({smoke_flag} to smoke-test)")


if __name__ == "__main__":
    main()
