"""Bundles on disk: found, ordered and refused exactly as the ModelSource port promises."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from predictor_core import BundleError, ModelManifest, ModelNotFound, ModelRegistry
from predictor_onnx import BundleDirectory, OnnxRuntime, read_bundle, reference_root

SHIPPED = reference_root()


def copy_bundle(root: Path, name: str = "breast_cancer", version: str = "1.0.0") -> Path:
    target = root / name / version
    shutil.copytree(SHIPPED / name / "1.0.0", target)
    if version != "1.0.0":
        rewrite_manifest(target, version=version)
    return target


def rewrite_manifest(bundle: Path, **changes: object) -> None:
    manifest = ModelManifest.from_json((bundle / "manifest.json").read_bytes())
    (bundle / "manifest.json").write_bytes(msgspec.structs.replace(manifest, **changes).to_json())


def test_lists_every_shipped_model_in_name_order() -> None:
    names = [(m.name, m.version) for m in BundleDirectory([SHIPPED]).list_models()]
    assert names == [("breast_cancer", "1.0.0"), ("diabetes", "1.0.0"), ("penguins", "1.0.0")]


def test_newest_version_wins_with_numeric_ordering(tmp_path: Path) -> None:
    for version in ("1.9.0", "1.10.0", "1.2.0"):
        copy_bundle(tmp_path, version=version)
    source = BundleDirectory([tmp_path])
    assert ModelRegistry(source, default_model="breast_cancer").resolve().version == "1.10.0"
    assert source.load("breast_cancer", "1.2.0").manifest.version == "1.2.0"
    assert [m.version for m in source.list_models()] == ["1.2.0", "1.9.0", "1.10.0"]


def test_first_root_wins_a_clash(tmp_path: Path) -> None:
    mine = copy_bundle(tmp_path / "mine")
    rewrite_manifest(mine, description="my own copy")
    source = BundleDirectory([tmp_path / "mine", SHIPPED])
    assert source.load("breast_cancer", "1.0.0").manifest.description == "my own copy"
    assert len([m for m in source.list_models() if m.name == "breast_cancer"]) == 1


def test_loads_an_explicit_bundle_by_its_name_never_a_name_as_a_path(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    runtime = BundleDirectory([], bundles=[bundle]).load("breast_cancer", "1.0.0")
    assert isinstance(runtime, OnnxRuntime)
    assert runtime.manifest.name == "breast_cancer"
    with pytest.raises(ModelNotFound):
        BundleDirectory([]).load(str(bundle), "1.0.0")


def test_unknown_model_and_version_say_what_exists() -> None:
    source = BundleDirectory([SHIPPED])
    with pytest.raises(ModelNotFound, match=r"no model 'iris'; available: breast_cancer, diabetes, penguins"):
        source.load("iris", "1.0.0")
    with pytest.raises(ModelNotFound, match=r"no version '9'; available: 1.0.0"):
        source.load("penguins", "9")


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"has no readable model.onnx"):
        BundleDirectory([tmp_path]).load("breast_cancer", "1.0.0")


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"has no readable manifest.json"):
        read_bundle(bundle)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no model bundle at"):
        read_bundle(tmp_path / "nothing")


def test_truncated_model_is_refused_by_its_hash(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path, "penguins")
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"corrupt or altered: its SHA-256 is"):
        BundleDirectory([tmp_path]).load("penguins", "1.0.0")


def test_tampered_model_is_refused_even_when_still_valid_onnx(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "model.onnx").write_bytes((SHIPPED / "diabetes" / "1.0.0" / "model.onnx").read_bytes())
    with pytest.raises(BundleError, match=r"corrupt or altered"):
        BundleDirectory([tmp_path]).load("breast_cancer", "1.0.0")


def test_corrupt_manifest_is_refused_and_skipped_when_listing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "manifest.json").write_text('{"name": "breast_cancer", "vers')
    source = BundleDirectory([tmp_path])
    with pytest.raises(BundleError, match=r"manifest is not valid JSON"):
        read_bundle(bundle)
    assert source.list_models() == []
    assert "skipping bundle" in caplog.text


def test_newer_manifest_format_is_refused(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    raw = msgspec.json.decode((bundle / "manifest.json").read_bytes())
    raw["format_version"] = 99
    (bundle / "manifest.json").write_bytes(msgspec.json.encode(raw))
    with pytest.raises(BundleError, match=r"format 99 is newer than this release reads"):
        read_bundle(bundle)


def test_manifest_disagreeing_with_the_graph_is_refused(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    manifest = ModelManifest.from_json((bundle / "manifest.json").read_bytes())
    renamed = msgspec.structs.replace(manifest.onnx.inputs[0], name="features")
    rewrite_manifest(bundle, onnx=msgspec.structs.replace(manifest.onnx, inputs=(renamed,)))
    with pytest.raises(BundleError, match=r"graph inputs .* differ from the manifest's"):
        BundleDirectory([tmp_path]).load("breast_cancer", "1.0.0")


def test_unsupported_opset_is_refused_with_onnxruntimes_reason(tmp_path: Path) -> None:
    import hashlib

    import onnx

    bundle = copy_bundle(tmp_path)
    graph = onnx.load(bundle / "model.onnx")
    for entry in graph.opset_import:
        if entry.domain == "":
            entry.version = 99
    data = graph.SerializeToString()
    (bundle / "model.onnx").write_bytes(data)
    manifest = ModelManifest.from_json((bundle / "manifest.json").read_bytes())
    opsets = {**manifest.onnx.opsets, "": 99}
    rewrite_manifest(
        bundle,
        sha256=hashlib.sha256(data).hexdigest(),
        onnx=msgspec.structs.replace(manifest.onnx, opsets=opsets),
    )
    with pytest.raises(BundleError, match=r"onnxruntime .* cannot load model 'breast_cancer'"):
        BundleDirectory([tmp_path]).load("breast_cancer", "1.0.0")
