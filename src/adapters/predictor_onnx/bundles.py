"""BundleDirectory: model bundles on disk, listed and loaded only after they prove they are intact.

Layout under each root: `<name>/<version>/{model.onnx,manifest.json}`. Loading checks, in order: the
files exist, the manifest parses and its format is one this release reads, the SHA-256 of model.onnx
equals the manifest's, and onnxruntime accepts the graph and its opsets (OnnxRuntime does the last).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from predictor_core import (
    BundleError,
    ModelConflict,
    ModelManifest,
    ModelNotFound,
    PredictorError,
    version_key,
)
from predictor_onnx.runtime import OnnxRuntime

__all__ = ["BundleDirectory", "install_bundle", "is_bundle_path", "read_bundle", "read_manifest"]

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MODEL = "model.onnx"


def read_bundle(path: Path | str) -> tuple[ModelManifest, bytes]:
    """The manifest and the verified model bytes of one bundle directory.

    Raises:
        BundleError: missing files, an unreadable or too-new manifest, or a model whose hash differs.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"no model bundle at {path} (expected a directory with {MODEL} and {MANIFEST})")
    manifest = read_manifest(path)
    try:
        model = (path / MODEL).read_bytes()
    except OSError as exc:
        raise BundleError(f"bundle {path} has no readable {MODEL}: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(model).hexdigest()
    if digest != manifest.sha256:
        raise BundleError(
            f"{MODEL} of {manifest.name!r} version {manifest.version!r} at {path} is corrupt or altered: "
            f"its SHA-256 is {digest[:16]}…, the manifest expects {manifest.sha256[:16]}…"
        )
    return manifest, model


def install_bundle(bundle: Path | str, store: Path | str) -> tuple[ModelManifest, Path, bool]:
    """Check a bundle as the server would load it, then place it at `<store>/<name>/<version>/`.

    The copy is made beside its destination and renamed into place, so a replica reading the store never
    sees half a bundle. Installing the same bundle again changes nothing.

    Returns:
        The manifest, where it lives, and whether it was newly placed.

    Raises:
        BundleError: missing files, an unreadable or too-new manifest, a hash, opset or signature that
            does not check out.
        ModelConflict: the store holds this name and version with another model file.
    """
    manifest, model = read_bundle(bundle)
    OnnxRuntime(manifest, model)  # opsets, graph signature and a warm-up run, as at serving
    target = Path(store) / manifest.name / manifest.version
    if target.exists():
        existing = read_manifest(target)
        if existing.sha256 != manifest.sha256:
            raise ModelConflict(
                f"the model store holds {manifest.name} {manifest.version} with another model file "
                f"({existing.sha256[:12]}…): give the changed model a new version"
            )
        return existing, target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{manifest.version}-", dir=target.parent))
    try:
        for name in (MODEL, MANIFEST):
            shutil.copyfile(Path(bundle) / name, staging / name)
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(
            f"cannot place {manifest.name} {manifest.version} in {target.parent}: {exc}"
        ) from exc
    return manifest, target, True


def read_manifest(path: Path) -> ModelManifest:
    try:
        raw = (path / MANIFEST).read_bytes()
    except OSError as exc:
        raise BundleError(f"bundle {path} has no readable {MANIFEST}: {exc.strerror or exc}") from exc
    try:
        return ModelManifest.from_json(raw)
    except BundleError as exc:
        raise BundleError(f"{path / MANIFEST}: {exc}") from exc


class BundleDirectory:
    """A `predictor_core.ModelSource` over bundle roots, searched in order (the first root wins a clash).

    Models are only ever addressed by name: a name is never read as a path, so no caller (an HTTP client
    above all) can make the source load a bundle from a directory of its choosing. Single bundles outside
    the roots are added explicitly, by the composition root, with `bundles`.
    """

    def __init__(
        self,
        roots: Sequence[Path | str],
        *,
        bundles: Sequence[Path | str] = (),
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        """Remember where to look; nothing is read until models are listed or loaded.

        Args:
            roots: directories of `<name>/<version>/` bundles.
            bundles: single bundle directories, known by their manifest's name; they win over the roots.
            device: "cpu", "cuda" or "auto".
            threads: onnxruntime intra-op threads per session.
        """
        self.roots = tuple(Path(r) for r in roots)
        self.bundles = tuple(Path(b) for b in bundles)
        self.device = device
        self.threads = threads

    def list_models(self) -> list[ModelManifest]:
        """Every readable bundle, by name then version; broken ones are logged and skipped.

        Raises:
            BundleError: a bundle named explicitly (`bundles`) cannot be read.
        """
        return [manifest for manifest, _ in self._found().values()]

    def load(self, name: str, version: str, /) -> OnnxRuntime:
        """Load one model version (the registry decides which version a bare name means).

        Raises:
            ModelNotFound: no bundle with that name or version.
            BundleError: the bundle is missing files, corrupt, tampered with or unsupported.
            ConfigurationError: the configured device cannot be had.
        """
        manifest, model = read_bundle(self.locate(name, version))
        return OnnxRuntime(manifest, model, device=self.device, threads=self.threads)

    def locate(self, name: str, version: str, /) -> Path:
        """The directory of one model version's bundle, without reading it.

        Raises:
            ModelNotFound: no bundle with that name or version.
        """
        found = self._found()
        path = found.get((name, version), (None, None))[1]
        if path is None:
            versions = [key[1] for key in found if key[0] == name]
            if not versions:
                known = sorted({key[0] for key in found})
                raise ModelNotFound(f"no model {name!r}; available: {', '.join(known) or 'none'}")
            raise ModelNotFound(
                f"model {name!r} has no version {version!r}; available: {', '.join(versions)}"
            )
        return path

    def _found(self) -> dict[tuple[str, str], tuple[ModelManifest, Path]]:
        found: dict[tuple[str, str], tuple[ModelManifest, Path]] = {}
        for bundle in self.bundles:  # named explicitly: a broken one is an error, not a warning
            manifest = read_manifest(bundle)
            found.setdefault((manifest.name, manifest.version), (manifest, bundle))
        for root in self.roots:
            for manifest_path in sorted(root.glob(f"*/*/{MANIFEST}")):
                bundle = manifest_path.parent
                try:
                    manifest = read_manifest(bundle)
                except PredictorError as exc:
                    log.warning("skipping bundle %s: %s", bundle, exc)
                    continue
                found.setdefault((manifest.name, manifest.version), (manifest, bundle))
        return dict(sorted(found.items(), key=lambda item: (item[0][0], version_key(item[0][1]))))

    def __repr__(self) -> str:
        return f"BundleDirectory({[str(r) for r in self.roots]}, device={self.device!r})"


def is_bundle_path(value: str | Path) -> bool:
    """Whether a configured model means a bundle directory rather than a model name."""
    text = str(value)
    return "/" in text or "\\" in text or text.startswith(".") or Path(text, MANIFEST).is_file()
