"""Look inside finished runs for the mechanism of appearance collapse (``docs/appearance-collapse.md``).

For each run folder of ``ds-compare`` (``runs/<scene>/<method>/seed<N>``), the trained model renders the rays of
its first training view and reports, over the NeRF-level samples that carry weight (w > 0.01):

* ``pre-activation``: quantiles of the colour head's output before its sigmoid;
* ``exactly 1.0``: the share of those samples whose colour is exactly 1.0 in float32 in every channel (sigmoid
  saturated: its gradient s (1 - s) is exactly 0 there);
* ``dead units``: the share of the colour head's hidden ReLU units that are 0 for every one of those samples (a
  dead unit passes no gradient either; all dead leave a constant colour);
* the view's appearance statistics (:func:`depth_strategies.core.appearance.appearance_statistics`).

Usage (from the repository root)::

    python scripts/appearance_diagnosis.py docs/results/v0.3/appearance-collapse/runs/thin-10/*/seed0
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Dict, List

import torch
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.utils.eval_utils import eval_setup

from depth_strategies.core.appearance import appearance_statistics, appearance_status, object_mask_from_background
from depth_strategies.core.metrics import ground_truth_rgb


def diagnose(run: Path) -> Dict[str, object]:
    """The figures above for one run folder."""
    config = next(run.glob("nerfstudio/run/*/*/config.yml"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, pipeline, _, _ = eval_setup(config, test_mode="inference")
    model = pipeline.model
    head = model.field.mlp_head
    captured: Dict[str, List[torch.Tensor]] = {"hidden": [], "pre": []}
    layers = head[0].layers if isinstance(head, torch.nn.Sequential) else head.layers
    hooks = [layers[-1].register_forward_hook(lambda m, i, o: captured["pre"].append(o.detach()))]
    hooks.append(layers[-1].register_forward_pre_hook(lambda m, i: captured["hidden"].append(i[0].detach())))
    dataset = pipeline.datamanager.train_dataset
    camera = pipeline.datamanager.train_dataparser_outputs.cameras[0:1].to(model.device)
    with torch.no_grad():
        bundle = camera.generate_rays(camera_indices=0, keep_shape=True)
        outputs = model.get_outputs_for_camera_ray_bundle(bundle)
        rays = model.collider(bundle.flatten()[::7])  # a subsample of the view's rays for the per-sample figures
        samples, _, _ = model.proposal_sampler(rays, density_fns=model.density_fns)
        captured["hidden"].clear()
        captured["pre"].clear()
        field = model.field.forward(samples)
        weights = samples.get_weights(field[FieldHeadNames.DENSITY])
    for hook in hooks:
        hook.remove()
    heavy = (weights[..., 0] > 0.01).reshape(-1)
    pre = captured["pre"][0].reshape(-1, 3)[heavy]
    hidden = captured["hidden"][0].reshape(-1, captured["hidden"][0].shape[-1])[heavy]
    rgb = field[FieldHeadNames.RGB].reshape(-1, 3)[heavy]
    gt = ground_truth_rgb(dataset[0]["image"].to(model.device))
    objects = object_mask_from_background(gt, torch.ones(3))  # object scenes are scored on white
    stats = appearance_statistics(outputs["rgb"], gt, outputs["accumulation"], objects)
    stats_f = {k: float(v) for k, v in stats.items()}
    quantiles = torch.quantile(pre.float(), torch.tensor([0.05, 0.5, 0.95])) if len(pre) else torch.zeros(3)
    return {
        "run": str(run),
        "samples": int(heavy.sum()),
        "pre-activation q05/q50/q95": [round(float(q), 2) for q in quantiles],
        "exactly 1.0": float((rgb == 1.0).all(dim=-1).float().mean()) if len(rgb) else float("nan"),
        "dead units": float((hidden <= 0).all(dim=0).float().mean()) if len(hidden) else float("nan"),
        **{k: round(v, 3) for k, v in stats_f.items()},
        "status": appearance_status(**stats_f),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of ds-compare (runs/<scene>/<method>/seedN)")
    args = parser.parse_args()
    for run in args.runs:
        print(diagnose(run))


if __name__ == "__main__":
    main()
