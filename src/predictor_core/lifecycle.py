"""Model lifecycle: move aliases (promote, shadow, rollback) after checking the version can take traffic.

Aliases live in an `AliasStore` shared by every worker and replica; each process applies them to its
`ModelRegistry` (`sync`, called by a watcher the wiring starts), so a promotion made anywhere is served
everywhere within the watcher's period. A version is checked before an alias names it: it must load, and
reproduce the golden set its export stored (records and the outputs the graph gave then) within the
export's tolerance. On any failure nothing moves and the alias keeps its version.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np

from predictor_core.bundle import GoldenSet
from predictor_core.errors import AliasNotFound, BundleError, PromotionRefused
from predictor_core.ports import AliasChange, AliasStore, InferenceRuntime
from predictor_core.predictions import ClassifierOutputs, RegressorOutputs, TaskOutputs
from predictor_core.registry import PRODUCTION, ModelRegistry
from predictor_core.validation import validate_records

__all__ = ["ModelLifecycle", "check_golden"]


class ModelLifecycle:
    """Promote, shadow and roll back model versions through their aliases."""

    def __init__(self, registry: ModelRegistry, aliases: AliasStore) -> None:
        """Move aliases in `aliases` and apply them to `registry`."""
        self._registry = registry
        self._aliases = aliases

    async def sync(self) -> None:
        """Apply the alias store's aliases to this process's registry. Raises StoreUnavailable."""
        self._registry.apply_aliases(await self._aliases.aliases())

    async def move(self, name: str, alias: str, version: str, *, by: str) -> AliasChange:
        """Point `alias` of `name` at `version` once the version loads and passes its golden set.

        Raises:
            ModelNotFound: no such version.
            ConfigurationError: it cannot be loaded here (e.g. the device is missing).
            PromotionRefused: its bundle does not load, it has no golden set, or does not reproduce it.
            StoreUnavailable: the alias store cannot be written now.
        """
        try:
            runtime = await asyncio.to_thread(self._registry.runtime, name, version)
        except PromotionRefused:
            raise
        except BundleError as exc:
            raise PromotionRefused(f"{name} {version} cannot take traffic as {alias!r}: {exc}") from exc
        reason = await asyncio.to_thread(check_golden, runtime)
        if reason is not None:
            raise PromotionRefused(f"{name} {version} cannot take traffic as {alias!r}: {reason}")
        change = await self._aliases.move(name, alias, version, by=by)
        await self.sync()
        return change

    async def remove(self, name: str, alias: str, *, by: str) -> AliasChange:
        """Remove an alias (for `production`: the name serves its newest version again).

        Raises:
            AliasNotFound: the model has no such alias now.
            StoreUnavailable: the alias store cannot be read or written now.
        """
        if alias not in (await self._aliases.aliases()).get(name, {}):
            raise AliasNotFound(f"model {name!r} has no alias {alias!r}")
        change = await self._aliases.move(name, alias, None, by=by)
        await self.sync()
        return change

    async def rollback(self, name: str, alias: str = PRODUCTION, *, by: str) -> AliasChange:
        """Undo the alias's latest change: back to the version it named before (checked again).

        When the alias was new, it is removed (for `production`: the name serves its newest version again).

        Raises:
            PromotionRefused: the alias was never moved, or its latest change removed it.
        """
        history = await self._aliases.history(name, alias, limit=1)
        if not history or history[0].to_version is None:
            raise PromotionRefused(f"{name} {alias!r} has no change to roll back")
        previous = history[0].from_version
        if previous is None:
            return await self.remove(name, alias, by=by)
        return await self.move(name, alias, previous, by=by)

    async def history(self, name: str, alias: str | None = None, *, limit: int = 50) -> list[AliasChange]:
        """The latest alias changes of a model, newest first."""
        return await self._aliases.history(name, alias, limit=limit)


def check_golden(runtime: InferenceRuntime) -> str | None:
    """Why the runtime does not reproduce its bundle's golden set, or None when it does."""
    manifest = runtime.manifest
    golden = manifest.golden
    if golden is None or not golden.records:
        return "its bundle has no golden set to check (export it again with this release)"
    try:
        outputs = runtime.infer(validate_records(manifest.schema, list(golden.records)))
    except Exception as exc:  # any failure to run the golden set refuses the promotion
        return f"its golden set does not run: {type(exc).__name__}: {exc}"
    return _differences(golden, outputs)


def _differences(golden: GoldenSet, outputs: TaskOutputs) -> str | None:
    if isinstance(outputs, RegressorOutputs):
        expected = np.asarray(golden.values or (), dtype=np.float64)
        got = outputs.values.astype(np.float64)
    else:
        assert isinstance(outputs, ClassifierOutputs)
        labels = outputs.labels.tolist()
        wrong = sum(a != b for a, b in zip(labels, golden.labels or (), strict=False))
        if wrong or len(labels) != len(golden.labels or ()):
            return f"{wrong} of {len(golden.records)} golden labels differ"
        expected = np.asarray(golden.probabilities or (), dtype=np.float64)
        got = outputs.probabilities.astype(np.float64)
    if expected.shape != got.shape:
        return f"golden outputs have shape {expected.shape}, the model gives {got.shape}"
    worst = float(np.max(np.abs(expected - got))) if got.size else 0.0
    if not math.isfinite(worst) or worst > golden.tolerance:
        return f"outputs differ from the golden set by up to {worst:.3g} (tolerance {golden.tolerance:.3g})"
    return None
