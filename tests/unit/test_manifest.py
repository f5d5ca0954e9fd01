import msgspec
import pytest

from predictor_core import MANIFEST_FORMAT, BundleError, ModelManifest, Task
from tests.fakes import toy_manifest


def test_manifest_round_trips():
    manifest = toy_manifest()
    again = ModelManifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.identity.sha256 == manifest.sha256
    assert manifest.format_version == MANIFEST_FORMAT


def edit(manifest, **changes):
    raw = msgspec.json.decode(manifest.to_json())
    raw.update(changes)
    return msgspec.json.encode(raw)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"format_version": MANIFEST_FORMAT + 1}, "newer than this release"),
        ({"format_version": "1"}, "newer than this release"),
        ({"task": "ranking"}, "invalid manifest"),
        ({"classes": None}, "needs its classes"),
        ({"positive_class": "maybe"}, "positive class"),
        ({"classes": ["a", "b", "c"]}, "2 classes"),
    ],
)
def test_bad_manifests_are_refused(changes, fragment):
    with pytest.raises(BundleError, match=fragment):
        ModelManifest.from_json(edit(toy_manifest(), **changes))


def test_invalid_json_and_invalid_schema_are_refused():
    with pytest.raises(BundleError, match="not valid JSON"):
        ModelManifest.from_json(b"{not json")
    raw = msgspec.json.decode(toy_manifest().to_json())
    raw["schema"]["features"][0]["kind"] = "tensor"
    with pytest.raises(BundleError, match="invalid manifest"):
        ModelManifest.from_json(msgspec.json.encode(raw))


def test_older_manifests_without_optional_fields_still_load():
    raw = msgspec.json.decode(toy_manifest(Task.REGRESSION).to_json())
    for optional in ("metrics", "training", "versions", "description", "format_version", "target"):
        raw.pop(optional, None)
    assert ModelManifest.from_json(msgspec.json.encode(raw)).task is Task.REGRESSION
