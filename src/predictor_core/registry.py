"""ModelRegistry: every model reference resolved to one concrete version, and one runtime per version.

A reference is a name (the default model when None), optionally with a version. The registry answers
cheap questions from the manifests alone (which versions exist, which one a name serves, what a version
accepts) and loads an inference session only when a version must predict or say where it runs. Runtimes
are cached by `ModelIdentity` (name, version and ONNX hash), so a name and its explicit version share
one session. "Newest" is decided here, by version order, and nowhere else.

The seams later work uses: `point` changes what a bare name serves (aliases, rollback), `evict` drops a
loaded session (memory bounds), `refresh` re-reads the source (a new bundle). A request that already
holds a runtime finishes on it whatever the registry does meanwhile.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from predictor_core.bundle import ModelManifest
from predictor_core.errors import ModelNotFound, PredictorError
from predictor_core.ports import ExecutionReport, InferenceRuntime, ModelSource
from predictor_core.predictions import ModelIdentity

__all__ = ["ModelDescription", "ModelRegistry", "ModelVersions", "version_key"]

RESCAN_AFTER_S = 1.0
"""A reference the catalogue does not know re-reads the source, at most once per this many seconds."""


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort "1.10.0" after "1.9.0": numeric parts by value, other parts as text after numbers."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_]", version))


@dataclass(frozen=True, slots=True)
class ModelVersions:
    """One model name: every version (oldest first) and the one the name serves now."""

    name: str
    versions: tuple[ModelManifest, ...]
    current: ModelManifest


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDescription:
    """One model version as the registry knows it: the manifest, its siblings, and where it runs."""

    manifest: ModelManifest
    versions: tuple[str, ...]
    """Every version of this model name, oldest first."""
    current: bool
    """Whether this is the version the bare name serves now."""
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
        self._pointers: dict[str, str] = {}
        self._runtimes: dict[ModelIdentity, InferenceRuntime] = {}
        self._lock = threading.RLock()

    @property
    def default_model(self) -> str:
        return self._default

    def resolve(self, name: str | None = None, version: str | None = None) -> ModelManifest:
        """The manifest of the concrete version a reference means; loads nothing.

        Raises:
            ModelNotFound: naming what is available instead.
        """
        name = self._default if name is None else name
        found = self._find(name, version)
        if found is None and self._clock() - self._read_at >= RESCAN_AFTER_S:
            self.refresh()
            found = self._find(name, version)
        if found is None:
            raise ModelNotFound(self._missing(name, version))
        return found

    def runtime(self, name: str | None = None, version: str | None = None) -> InferenceRuntime:
        """The loaded runtime of the version a reference means, loading it on first use.

        Raises:
            ModelNotFound, BundleError, ConfigurationError: as `ModelSource.load`.
        """
        manifest = self.resolve(name, version)
        runtime = self._runtimes.get(manifest.identity)
        return runtime if runtime is not None else self._load(manifest)

    def catalogue(self) -> list[ModelVersions]:
        """Every model name with its versions and the one it serves now, by name; loads nothing."""
        entries = []
        for name, versions in self._read().by_name.items():
            current = self._find(name, None)
            if current is not None:  # a name pointed at a vanished version serves nothing
                entries.append(ModelVersions(name, versions, current))
        return entries

    def versions(self, name: str) -> ModelVersions:
        """One model name's versions and the one it serves now. Raises ModelNotFound."""
        current = self.resolve(name)
        return ModelVersions(name, self._read().by_name[name], current)

    def describe(
        self, name: str | None = None, version: str | None = None, *, load: bool = True
    ) -> ModelDescription:
        """What a version is and where it runs; `load` tries to load it when it is not loaded yet.

        Raises:
            ModelNotFound: no such name or version. A version that fails to load is described, with
                `load_error`, rather than raised.
        """
        manifest = self.resolve(name, version)
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
            current=self._find(manifest.name, None) == manifest,
            execution=None if runtime is None else runtime.execution,
            load_error=error,
        )

    def point(self, name: str, version: str | None) -> None:
        """Make the bare `name` serve `version` (None: the newest again). Requests in flight keep theirs.

        Raises:
            ModelNotFound: no such version of `name`.
        """
        if version is None:
            with self._lock:
                self._pointers.pop(name, None)
            return
        self.resolve(name, version)
        with self._lock:
            self._pointers[name] = version

    def evict(self, identity: ModelIdentity) -> bool:
        """Forget a loaded runtime (the next request loads it again); whether one was loaded."""
        with self._lock:
            return self._runtimes.pop(identity, None) is not None

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

    def _find(self, name: str, version: str | None) -> ModelManifest | None:
        catalogue = self._read()
        if version is None:
            versions = catalogue.by_name.get(name)
            if not versions:
                return None
            pointed = self._pointers.get(name)
            return versions[-1] if pointed is None else catalogue.by_version.get((name, pointed))
        return catalogue.by_version.get((name, version))

    def _missing(self, name: str, version: str | None) -> str:
        catalogue = self._read()
        versions = catalogue.by_name.get(name)
        if not versions:
            return f"no model {name!r}; available: {', '.join(catalogue.by_name) or 'none'}"
        shown = ", ".join(m.version for m in versions)
        if version is None:
            gone = self._pointers.get(name)
            return f"model {name!r} serves version {gone!r}, which is gone; available: {shown}"
        return f"model {name!r} has no version {version!r}; available: {shown}"

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
