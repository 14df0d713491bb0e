"""Model config fields that do nothing without another: :func:`check_model_config` refuses such a combination
with a ``ValueError`` naming both fields and the flag that fixes it, instead of a run that silently ignores a
setting.

Checked where a config is complete: when the model is built (after the scene type has filled its fields,
:func:`depth_strategies.core.model.resolve_scene`) and when a registered method's config is made
(:func:`depth_strategies.methods.derive`), not in a ``__post_init__``: nerfstudio and tyro build a config's
defaults field by field, through states no user chose.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

_MISSING = object()


@dataclass(frozen=True)
class Rule:
    """``field`` (when ``is_set``) needs ``needs`` to satisfy ``holds`` (None from ``holds``: not decided yet, e.g.
    left to the scene type); ``fix`` is the ns-train flag that makes it hold."""

    field: str
    is_set: Callable[[Any], bool]
    needs: str
    holds: Callable[[Any], Optional[bool]]
    condition: str
    fix: str

    @property
    def name(self) -> str:
        return f"{self.field}_needs_{self.needs}"


def _positive(value: Any) -> Optional[bool]:
    return None if value is None else value > 0


def _non_default(field_name: str) -> Callable[[Any], bool]:
    """Set to something else than the field's default (the default is what the field means when unused)."""
    return lambda config: getattr(config, field_name) != _default(config, field_name)


def _default(config: Any, field_name: str) -> Any:
    for f in dataclasses.fields(config):
        if f.name == field_name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return _MISSING


def _flag(field_name: str) -> str:
    return "--pipeline.model." + field_name.replace("_", "-")


def _rule(field_name: str, is_set: Callable[[Any], bool], needs: str, holds: Callable[[Any], Optional[bool]],
          condition: str, fix_value: str) -> Rule:
    return Rule(field_name, is_set, needs, holds, condition, f"{_flag(needs)} {fix_value}")


def _true(field_name: str) -> Callable[[Any], bool]:
    return lambda config: bool(getattr(config, field_name))


RULES: Tuple[Rule, ...] = (
    _rule("consistency_sigma", _true("consistency_sigma"), "sigma_window_mult",
          lambda c: _positive(c.sigma_window_mult), "> 0 (the windows that the sigma widens)", "3"),
    _rule("guide_by_trust", _true("guide_by_trust"), "sigma_window_mult",
          lambda c: _positive(c.sigma_window_mult), "> 0 (the trust is the window's uncertainty weight)", "3"),
    _rule("guide_by_trust", _true("guide_by_trust"), "guided_fraction",
          lambda c: _positive(c.guided_fraction), "> 0 (guided sampling)", "0.5"),
    _rule("max_trusted_half_width", lambda c: c.max_trusted_half_width > 0, "sigma_window_mult",
          lambda c: _positive(c.sigma_window_mult), "> 0 (without it every window is guide_half_width)", "3"),
    _rule("mask_follows_trust", _true("mask_follows_trust"), "max_trusted_half_width",
          lambda c: _positive(c.max_trusted_half_width), "> 0 (the limit that decides which depth is trusted)",
          "0.6"),
    _rule("mask_follows_trust", _true("mask_follows_trust"), "empty_space_mult",
          lambda c: _positive(c.empty_space_mult), "> 0 (the mask loss it weights)", "0.015"),
    *(_rule(name, _non_default(name), "depth_alignment", lambda c: c.depth_alignment != "none",
            "!= 'none' (the alignment it tunes)", "scale-shift")
      for name in ("alignment_momentum", "alignment_warmup", "alignment_min_rays")),
    _rule("random_training_background_steps", _non_default("random_training_background_steps"),
          "random_training_background",
          lambda c: None if c.random_training_background is None else bool(c.random_training_background),
          "True (the random backgrounds it limits)", "True"),
    _rule("soft_depth_loss", lambda c: c.soft_depth_loss != "l2", "soft_depth_mult",
          lambda c: _positive(c.soft_depth_mult), "> 0 (the soft loss it chooses)", "0.03"),
    _rule("soft_depth_sigma", _non_default("soft_depth_sigma"), "soft_depth_loss",
          lambda c: c.soft_depth_loss != "l2", "'ds-nerf' or 'urf' (the losses with a sigma)", "ds-nerf"),
    _rule("depth_penalty", lambda c: c.depth_penalty != "l2", "soft_depth_mult",
          lambda c: _positive(c.soft_depth_mult), "> 0 (the soft loss it penalises with)", "0.03"),
    _rule("depth_penalty", lambda c: c.depth_penalty != "l2", "soft_depth_loss",
          lambda c: c.soft_depth_loss == "l2", "'l2' (nerfstudio's DS-NeRF and URF losses have their own)", "l2"),
    _rule("depth_penalty_scale", _non_default("depth_penalty_scale"), "depth_penalty",
          lambda c: c.depth_penalty != "l2", "'huber' or 'cauchy' (the penalties with a scale)", "cauchy"),
    _rule("appearance_check_from", _non_default("appearance_check_from"), "appearance_check_every",
          lambda c: _positive(c.appearance_check_every), "> 0 (the check it starts)", "100"),
)
"""Every pair of model fields of which the first does nothing unless the second is set."""


def check_model_config(config: Any) -> None:
    """Raise ``ValueError`` for the first :data:`RULES` pair that ``config`` sets one field of without the other.
    Fields that ``config`` lacks (a nerfstudio reference's config) and requirements not decided yet are skipped."""
    for rule in RULES:
        if not all(hasattr(config, name) for name in (rule.field, rule.needs)):
            continue
        if rule.is_set(config) and rule.holds(config) is False:
            default = _default(config, rule.field)
            undo = "" if default is _MISSING else f", or leave {rule.field} at its default ({_flag(rule.field)} " \
                                                  f"{default})"
            raise ValueError(
                f"{rule.field} = {getattr(config, rule.field)!r} does nothing unless {rule.needs} "
                f"{rule.condition}, but {rule.needs} = {getattr(config, rule.needs)!r}: set {rule.fix}{undo}"
            )
