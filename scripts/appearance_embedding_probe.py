"""How much of a run's test PSNR rides on nerfacto's per-image appearance embedding (``docs/regimes.md``).

nerfacto learns one appearance vector per training image and, at test time, renders every view with their mean
(``use_average_appearance_embedding``): a test view has no embedding of its own. For each finished run folder of
``ds-compare`` (``runs/<scene>/[<condition>/]<method>/seed<N>``) and each test view asked for, this renders the view
with the mean (what the study scores), with zeros, and with each training image's own vector, and prints the PSNR of
each: a model whose colour does not depend on the embedding gives the same figure in every column; a spread of
several dB means the embedding carries the view's colour, and the mean is a lottery that depends on the viewpoint.

Usage (from the repository root)::

    python scripts/appearance_embedding_probe.py \\
        /work/regime-factors/runs/lego-10/rays-4096/depth-hard/seed0 --views r_19 r_59 r_111

(run folders keep their checkpoints; the committed ``docs/results`` copies keep only the results).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import numpy as np
import torch
from nerfstudio.pipelines.base_pipeline import Pipeline
from nerfstudio.utils.eval_utils import eval_setup
from torch import Tensor, nn

from depth_strategies.core.metrics import ground_truth_rgb


def embedding_table(field: nn.Module) -> nn.Embedding:
    """The appearance embedding of a nerfacto field (nerfstudio wraps ``nn.Embedding`` in its own ``Embedding``)."""
    embedding = getattr(field, "embedding_appearance", None)
    if embedding is None:
        raise SystemExit("this model has no appearance embedding (use_appearance_embedding: false): nothing to probe")
    return getattr(embedding, "embedding", embedding)


@contextlib.contextmanager
def every_image_as(table: nn.Embedding, vector: Tensor) -> Iterator[None]:
    """Within the block every training image's appearance vector is ``vector`` (so their mean, what a test view
    gets, is ``vector`` too); the learned vectors are restored after."""
    learned = table.weight.detach().clone()
    with torch.no_grad():
        table.weight.copy_(vector.expand_as(learned))
    try:
        yield
    finally:
        with torch.no_grad():
            table.weight.copy_(learned)


def psnr(rgb: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB with a data range of 1 (the study's)."""
    return float(-10.0 * math.log10(float(np.mean((rgb - gt) ** 2))))


def probe_view(pipeline: Pipeline, index: int) -> Dict[str, float]:
    """PSNR of eval view ``index`` with the mean embedding (``mean``: the study's render), zeros (``zeros``) and each
    training image's vector (``image <k>``)."""
    model, dataset = pipeline.model, pipeline.datamanager.eval_dataset
    camera = dataset.cameras[index : index + 1].to(pipeline.device)
    gt = ground_truth_rgb(dataset[index]["image"]).cpu().numpy()
    table = embedding_table(model.field)

    def render() -> float:
        with torch.no_grad():
            rgb = model.get_outputs_for_camera(camera)["rgb"].clamp(0, 1).cpu().numpy()
        return psnr(rgb, gt)

    out = {"mean": render()}
    with every_image_as(table, torch.zeros(table.weight.shape[1])):
        out["zeros"] = render()
    for k, vector in enumerate(table.weight.detach().clone()):
        with every_image_as(table, vector):
            out[f"image {k}"] = render()
    return out


def markdown(rows: Dict[str, Dict[str, float]]) -> str:
    """One row per view: the mean's PSNR, zeros', the best and worst training image's and the spread."""
    lines = ["| view | mean (scored) | zeros | best image | worst image | spread (dB) |", "|---|---|---|---|---|---|"]
    for view, values in rows.items():
        images = {k: v for k, v in values.items() if k.startswith("image ")}
        best, worst = max(images, key=images.get), min(images, key=images.get)
        lines.append(f"| {view} | {values['mean']:.2f} | {values['zeros']:.2f} | {images[best]:.2f} ({best}) | "
                     f"{images[worst]:.2f} ({worst}) | {images[best] - images[worst]:.2f} |")
    return "\n".join(lines)


def probe_run(run: Path, views: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """{view name: :func:`probe_view`} for one run folder; ``views``: test-view names (``r_19``), all when empty."""
    config = next(run.glob("nerfstudio/run/*/*/config.yml"), None)
    if config is None:
        raise SystemExit(f"{run}: no nerfstudio/run/*/*/config.yml (give a ds-compare run folder that kept its "
                         "checkpoint)")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # nerfstudio's loading chatter
        warnings.simplefilter("ignore")
        _, pipeline, _, _ = eval_setup(config, test_mode="test")
    pipeline.eval()
    names: List[str] = [Path(f).stem for f in pipeline.datamanager.eval_dataset.image_filenames]
    unknown = [v for v in views if v not in names]
    if unknown:
        raise SystemExit(f"{run}: no test view {unknown[0]!r}; its test views: {', '.join(names)}")
    return {name: probe_view(pipeline, names.index(name)) for name in (views or names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="ds-compare run folders")
    parser.add_argument("--views", nargs="*", default=[], help="test-view names (default: every test view)")
    args = parser.parse_args()
    for run in args.runs:
        print(f"\n{run}\n")
        print(markdown(probe_run(run, args.views)))


if __name__ == "__main__":
    main()
