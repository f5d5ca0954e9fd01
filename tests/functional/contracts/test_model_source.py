"""One contract for every ModelSource: the in-memory fake and the bundle directories behave alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from predictor_core import ModelManifest, ModelNotFound, ModelRegistry, ModelSource
from predictor_onnx import BundleDirectory, reference_root
from tests.fakes import InMemoryModelSource, toy_manifest

VERSIONS = ("1.9.0", "1.10.0", "1.2.0")
"""Listed out of order on purpose: the source orders nothing, the registry decides what is newest."""


def _bundles(root: Path) -> BundleDirectory:
    for version in VERSIONS:
        target = root / "breast_cancer" / version
        shutil.copytree(reference_root() / "breast_cancer" / "1.0.0", target)
        manifest = ModelManifest.from_json((target / "manifest.json").read_bytes())
        (target / "manifest.json").write_bytes(msgspec.structs.replace(manifest, version=version).to_json())
    return BundleDirectory([root])


@pytest.fixture(params=["memory", "bundles"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> ModelSource:
    if request.param == "memory":
        return InMemoryModelSource([toy_manifest(name="breast_cancer", version=v) for v in VERSIONS])
    return _bundles(tmp_path)


def test_lists_every_version_without_loading_any(source: ModelSource) -> None:
    listed = source.list_models()
    assert sorted(m.version for m in listed) == sorted(VERSIONS)
    assert {m.name for m in listed} == {"breast_cancer"}


@pytest.mark.parametrize("version", VERSIONS)
def test_loads_exactly_the_listed_version(source: ModelSource, version: str) -> None:
    listed = next(m for m in source.list_models() if m.version == version)
    runtime = source.load("breast_cancer", version)
    assert runtime.manifest == listed
    assert runtime.execution.providers


def test_unknown_names_and_versions_are_not_found(source: ModelSource) -> None:
    with pytest.raises(ModelNotFound, match="iris"):
        source.load("iris", "1.0.0")
    with pytest.raises(ModelNotFound, match=r"9\.9"):
        source.load("breast_cancer", "9.9")


def test_the_registry_picks_the_newest_by_version_order(source: ModelSource) -> None:
    registry = ModelRegistry(source, default_model="breast_cancer")
    assert registry.resolve().version == "1.10.0"
    assert [m.version for m in registry.versions("breast_cancer").versions] == ["1.2.0", "1.9.0", "1.10.0"]
