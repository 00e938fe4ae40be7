"""Local training with PFL-TPS's FFL pruning: the pruning-only counterpart of ``local``.

Every device trains its own model alone (nothing is sent, as in ``local``) while its FFL
linear layers carry the same trainable per-row thresholds, gradients, regulariser and
reset rule as PFL-TPS (``learning.algorithms.pfl_tps.pruning``), and its compute is
counted from its mask density in the same way. It is PFL-TPS with the hypernetwork off
and the thresholds kept personal (``prune_share_thresholds: false``): the SAL is a
personal parameter and no threshold mean exists. Comparing it with ``pfl_tps`` isolates
what the federation adds on top of pruning; comparing it with ``local`` isolates what
pruning does alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

from learning.algorithms.pfl_tps.algorithm import PFLTPS

__all__ = ["LocalPruned"]

#: the pruning hyper-parameters a ``local_pruned`` run may set (PFL-TPS's, same defaults)
PRUNING_KEYS: tuple[str, ...] = ("prune_lambda", "prune_reset_density", "pruning_flops", "prune_gradient",
                                 "prune_clamp")
#: PFL-TPS settings that make it local training with pruning
FIXED: dict[str, Any] = {"pruning_enabled": True, "hypernetwork_enabled": False, "prune_share_thresholds": False}


class LocalPruned(PFLTPS):
    """Local-only training with trainable-threshold FFL pruning (PFL-TPS's)."""

    name: ClassVar[str] = "local_pruned"
    communicates: ClassVar[bool] = False
    personalized: ClassVar[bool] = True
    extra_params: ClassVar[dict[str, Any]] = {k: PFLTPS.extra_params[k] for k in PRUNING_KEYS}

    @classmethod
    def resolve_params(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        """The common and pruning keys checked as for any algorithm, completed with PFL-TPS's
        other defaults and ``FIXED`` (the full set PFL-TPS's halves read)."""
        own = super().resolve_params(params)
        return {**PFLTPS.default_params(), **own, **FIXED}
