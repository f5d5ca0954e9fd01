"""ModelRegistry: every model reference resolved to one concrete version, and one runtime per version.

A reference is a name (the default model when None), optionally with a version. The registry answers
cheap questions from the manifests alone (which versions exist, which one a name serves, what a version
accepts) and loads an inference session only when a version must predict or say where it runs. Runtimes
are cached by `ModelIdentity` (name, version and ONNX hash), so a name and its explicit version share
one session. "Newest" is decided here, by version order, and nowhere else.

The seams: `pin` fixes what a bare name serves in this process, `apply_aliases` takes the alias store's
map (a bare name serves its `production` alias, else its newest version), `evict` and `evict_idle` drop
loaded sessions (memory bounds), `refresh` re-reads the source (a new bundle). A request that already
holds a runtime finishes on it whatever the registry does meanwhile.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from predictor_core.bundle import ModelManifest
from predictor_core.errors import ModelNotFound, PredictorError
from predictor_core.ports import ExecutionReport, InferenceRuntime, ModelSource
from predictor_core.predictions import ModelIdentity

__all__ = ["PRODUCTION", "SHADOW", "ModelDescription", "ModelRegistry", "ModelVersions", "version_key"]

PRODUCTION = "production"
"""The alias a bare model name serves."""
SHADOW = "shadow"
"""The alias of a challenger scored beside `production` on live traffic, never answering."""
RESCAN_AFTER_S = 1.0
"""A reference the catalogue does not know re-reads the source, at most once per this many seconds."""


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort "1.10.0" after "1.9.0": numeric parts by value, other parts as text after numbers."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_]", version))


@dataclass(frozen=True, slots=True)
class ModelVersions:
    """One model name: every version (oldest first), the one the name serves now, and its aliases."""

    name: str
    versions: tuple[ModelManifest, ...]
    current: ModelManifest
    aliases: dict[str, str]
    """Alias -> version, as the alias store says (a pin of this process is not an alias)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDescription:
    """One model version as the registry knows it: the manifest, its siblings, and where it runs."""

    manifest: ModelManifest
    versions: tuple[str, ...]
    """Every version of this model name, oldest first."""
    current: bool
    """Whether this is the version the bare name serves now."""
    aliases: tuple[str, ...] = ()
    """The aliases naming this version."""
    execution: ExecutionReport | None
    """Where its session runs; None when it is not loaded (see `load_error`)."""
    load_error: str | None = None
    """Why loading failed, when it was tried and failed."""


@dataclass(frozen=True, slots=True)
class _Catalogue:
    by_name: dict[str, tuple[ModelManifest, ...]]
    by_version: dict[tuple[str, str], ModelManifest]

    @classmethod
    def of(cls, manifests: Sequence[ModelManifest]) -> _Catalogue:
        by_version: dict[tuple[str, str], ModelManifest] = {}
        for manifest in manifests:
            by_version.setdefault((manifest.name, manifest.version), manifest)  # the source's first wins
        by_name: dict[str, list[ModelManifest]] = {}
        for manifest in by_version.values():
            by_name.setdefault(manifest.name, []).append(manifest)
        return cls(
            by_name={
                name: tuple(sorted(group, key=lambda m: version_key(m.version)))
                for name, group in sorted(by_name.items())
            },
            by_version=by_version,
        )


class ModelRegistry:
    """Resolves model references to concrete versions and owns their loaded runtimes. Thread-safe."""

    def __init__(
        self,
        source: ModelSource,
        *,
        default_model: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Remember the source; nothing is read until the first question.

        Args:
            source: where manifests are listed and versions loaded.
            default_model: the name served when a caller names none.
            clock: monotonic seconds, for throttling re-reads of the source.
        """
        self._source = source
        self._default = default_model
        self._clock = clock
        self._catalogue: _Catalogue | None = None
        self._read_at = 0.0
        self._pins: dict[str, str] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        self._runtimes: dict[ModelIdentity, InferenceRuntime] = {}
        self._used: dict[ModelIdentity, float] = {}
        self._lock = threading.RLock()

    @property
    def default_model(self) -> str:
        return self._default

    def resolve(
        self, name: str | None = None, version: str | None = None, *, alias: str | None = None
    ) -> ModelManifest:
        """The manifest of the concrete version a reference means; loads nothing.

        Raises:
            ModelNotFound: naming what is available instead.
        """
        name = self._default if name is None else name
        found = self._find(name, version, alias)
        if found is None and self._clock() - self._read_at >= RESCAN_AFTER_S:
            self.refresh()
            found = self._find(name, version, alias)
        if found is None:
            raise ModelNotFound(self._missing(name, version, alias))
        return found

    def runtime(
        self, name: str | None = None, version: str | None = None, *, alias: str | None = None
    ) -> InferenceRuntime:
        """The loaded runtime of the version a reference means, loading it on first use.

        Raises:
            ModelNotFound, BundleError, ConfigurationError: as `ModelSource.load`.
        """
        manifest = self.resolve(name, version, alias=alias)
        runtime = self._runtimes.get(manifest.identity)
        if runtime is None:
            runtime = self._load(manifest)
        self._used[runtime.manifest.identity] = self._clock()
        return runtime

    def catalogue(self) -> list[ModelVersions]:
        """Every model name with its versions and the one it serves now, by name; loads nothing."""
        entries = []
        for name, versions in self._read().by_name.items():
            current = self._find(name, None, None)
            if current is not None:  # a name pointed at a vanished version serves nothing
                entries.append(ModelVersions(name, versions, current, dict(self._aliases.get(name, {}))))
        return entries

    def versions(self, name: str) -> ModelVersions:
        """One model name's versions and the one it serves now. Raises ModelNotFound."""
        current = self.resolve(name)
        return ModelVersions(name, self._read().by_name[name], current, dict(self._aliases.get(name, {})))

    def describe(
        self,
        name: str | None = None,
        version: str | None = None,
        *,
        alias: str | None = None,
        load: bool = True,
    ) -> ModelDescription:
        """What a version is and where it runs; `load` tries to load it when it is not loaded yet.

        Raises:
            ModelNotFound: no such name or version. A version that fails to load is described, with
                `load_error`, rather than raised.
        """
        manifest = self.resolve(name, version, alias=alias)
        runtime = self._runtimes.get(manifest.identity)
        error = None
        if runtime is None and load:
            try:
                runtime = self._load(manifest)
            except PredictorError as exc:
                error = str(exc)
        return ModelDescription(
            manifest=manifest,
            versions=tuple(m.version for m in self._read().by_name[manifest.name]),
            current=self._find(manifest.name, None, None) == manifest,
            aliases=tuple(
                a for a, v in self._aliases.get(manifest.name, {}).items() if v == manifest.version
            ),
            execution=None if runtime is None else runtime.execution,
            load_error=error,
        )

    def pin(self, name: str, version: str | None) -> None:
        """Make the bare `name` serve `version` in this process whatever its aliases say (None: unpin).

        Raises:
            ModelNotFound: no such version of `name`.
        """
        if version is not None:
            self.resolve(name, version)
        with self._lock:
            if version is None:
                self._pins.pop(name, None)
            else:
                self._pins[name] = version

    def apply_aliases(self, aliases: Mapping[str, Mapping[str, str]]) -> None:
        """Take the alias store's whole map (name -> alias -> version); requests in flight keep theirs."""
        copied = {name: dict(names) for name, names in aliases.items()}
        with self._lock:
            self._aliases = copied

    def aliased(self, name: str, alias: str) -> ModelManifest | None:
        """The version an alias of `name` names, or None; cheap enough for every request (no re-read)."""
        return self._find(name, None, alias)

    def serving(self, name: str | None = None) -> str:
        """Why the bare name serves what it serves: "pinned", "alias production" or "newest"."""
        name = self._default if name is None else name
        if name in self._pins:
            return "pinned"
        return f"alias {PRODUCTION}" if PRODUCTION in self._aliases.get(name, {}) else "newest"

    def evict(self, identity: ModelIdentity) -> bool:
        """Forget a loaded runtime (the next request loads it again); whether one was loaded."""
        with self._lock:
            self._used.pop(identity, None)
            return self._runtimes.pop(identity, None) is not None

    def evict_idle(self, idle_s: float) -> list[ModelIdentity]:
        """Evict the runtimes no name or alias serves and no request used for `idle_s` seconds.

        A runtime whose version left the catalogue (its bundle was removed) goes at once.
        """
        catalogue = self._read()
        kept = {m.identity for m in (self._find(n, None, None) for n in catalogue.by_name) if m is not None}
        kept |= {
            m.identity
            for name, names in self._aliases.items()
            for version in names.values()
            if (m := catalogue.by_version.get((name, version))) is not None
        }
        now = self._clock()
        gone = [
            identity
            for identity in list(self._runtimes)
            if identity not in kept
            and (
                catalogue.by_version.get((identity.name, identity.version)) is None
                or now - self._used.get(identity, 0.0) >= idle_s
            )
        ]
        for identity in gone:
            self.evict(identity)
        return gone

    def loaded(self) -> list[ModelIdentity]:
        """The versions with a loaded session, in load order."""
        return list(self._runtimes)

    def refresh(self) -> None:
        """Re-read the source's manifests: new versions appear, removed ones are no longer resolved."""
        catalogue = _Catalogue.of(self._source.list_models())
        with self._lock:
            self._catalogue = catalogue
            self._read_at = self._clock()

    def _read(self) -> _Catalogue:
        if self._catalogue is None:
            self.refresh()
        assert self._catalogue is not None
        return self._catalogue

    def _find(self, name: str, version: str | None, alias: str | None) -> ModelManifest | None:
        catalogue = self._read()
        if version is not None:
            return catalogue.by_version.get((name, version))
        pointed = self._pointed(name, alias)
        if pointed is not None:
            return catalogue.by_version.get((name, pointed))
        if alias is not None:
            return None
        versions = catalogue.by_name.get(name)
        return versions[-1] if versions else None

    def _pointed(self, name: str, alias: str | None) -> str | None:
        """The version a pin or an alias names, if one does."""
        if alias is not None:
            return self._aliases.get(name, {}).get(alias)
        return self._pins.get(name) or self._aliases.get(name, {}).get(PRODUCTION)

    def _missing(self, name: str, version: str | None, alias: str | None) -> str:
        catalogue = self._read()
        versions = catalogue.by_name.get(name)
        if not versions:
            return f"no model {name!r}; available: {', '.join(catalogue.by_name) or 'none'}"
        shown = ", ".join(m.version for m in versions)
        if version is not None:
            return f"model {name!r} has no version {version!r}; available: {shown}"
        pointed = self._pointed(name, alias)
        if pointed is None:  # only an alias can be absent while the name has versions
            return f"model {name!r} has no alias {alias!r}; versions: {shown}"
        via = "is pinned to" if alias is None and name in self._pins else f"names ({alias or PRODUCTION})"
        return f"model {name!r} {via} version {pointed!r}, which is gone; available: {shown}"

    def _load(self, manifest: ModelManifest) -> InferenceRuntime:
        with self._lock:
            runtime = self._runtimes.get(manifest.identity)
            if runtime is None:
                runtime = self._source.load(manifest.name, manifest.version)
                # the file on disk is what predicts: a bundle changed since the listing is keyed as it is now
                self._runtimes[runtime.manifest.identity] = runtime
                if runtime.manifest.identity != manifest.identity:
                    self.refresh()
            return runtime
