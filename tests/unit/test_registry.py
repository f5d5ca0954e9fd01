"""The model registry: references resolved once, newest by version order, one runtime per identity."""

from __future__ import annotations

import msgspec
import pytest

from predictor_core import BundleError, ModelNotFound, ModelRegistry, Task, version_key
from tests.fakes import FakeRuntime, InMemoryModelSource, toy_manifest


def counting_source(*versions: str, name: str = "toy") -> tuple[InMemoryModelSource, list[str]]:
    loads: list[str] = []

    def factory(manifest):
        loads.append(manifest.version)
        return FakeRuntime(manifest)

    return InMemoryModelSource([toy_manifest(name=name, version=v) for v in versions], factory), loads


def test_newest_is_decided_by_version_order_not_listing_order() -> None:
    source, _ = counting_source("1.9.0", "1.10.0", "1.2.0")
    registry = ModelRegistry(source, default_model="toy")
    assert registry.resolve().version == "1.10.0"
    assert [m.version for m in registry.versions("toy").versions] == ["1.2.0", "1.9.0", "1.10.0"]
    assert sorted(["1.10.0", "1.9.0", "1.2.0", "1.10.0-rc1"], key=version_key) == [
        "1.2.0",
        "1.9.0",
        "1.10.0",
        "1.10.0-rc1",
    ]


def test_a_name_and_its_explicit_version_share_one_runtime() -> None:
    source, loads = counting_source("1", "2")
    registry = ModelRegistry(source, default_model="toy")
    assert registry.runtime() is registry.runtime("toy") is registry.runtime("toy", "2")
    assert registry.runtime("toy", "1") is not registry.runtime("toy", "2")
    assert loads == ["2", "1"]
    assert [i.version for i in registry.loaded()] == ["2", "1"]


def test_manifest_questions_load_nothing() -> None:
    source, loads = counting_source("1", "2")
    registry = ModelRegistry(source, default_model="toy")
    [entry] = registry.catalogue()
    assert (entry.name, entry.current.version) == ("toy", "2")
    described = registry.describe("toy", "1", load=False)
    assert described.execution is None
    assert described.versions == ("1", "2")
    assert not described.current
    assert registry.resolve("toy", "1").version == "1"
    assert loads == []
    assert registry.describe().execution is not None  # describing with load=True loads
    assert loads == ["2"]


def test_point_changes_what_a_bare_name_serves_and_in_flight_runtimes_stay() -> None:
    source, _ = counting_source("1", "2")
    registry = ModelRegistry(source, default_model="toy")
    in_flight = registry.runtime()
    registry.apply_aliases({"toy": {"production": "1"}})
    assert registry.runtime().manifest.version == "1"
    assert registry.describe("toy", "1", load=False).current
    assert in_flight.manifest.version == "2"  # a request that holds it finishes on it
    registry.apply_aliases({})
    assert registry.resolve().version == "2"
    with pytest.raises(ModelNotFound, match="no version '7'"):
        registry.pin("toy", "7")


def test_evict_drops_a_runtime_and_the_next_use_loads_it_again() -> None:
    source, loads = counting_source("1")
    registry = ModelRegistry(source, default_model="toy")
    first = registry.runtime()
    assert registry.evict(first.manifest.identity)
    assert not registry.evict(first.manifest.identity)
    assert registry.runtime() is not first
    assert loads == ["1", "1"]


def test_unknown_references_say_what_exists_and_rescan_at_most_once_a_second() -> None:
    now = [100.0]
    source, _ = counting_source("1")
    registry = ModelRegistry(source, default_model="toy", clock=lambda: now[0])
    with pytest.raises(ModelNotFound, match=r"no model 'other'; available: toy"):
        registry.resolve("other")
    with pytest.raises(ModelNotFound, match=r"model 'toy' has no version '2'; available: 1"):
        registry.resolve("toy", "2")
    source.manifests.append(toy_manifest(name="toy", version="2"))
    with pytest.raises(ModelNotFound):  # scanned less than a second ago
        registry.resolve("toy", "2")
    now[0] += 1.5
    assert registry.resolve("toy", "2").version == "2"  # a miss re-reads the source
    assert registry.resolve().version == "2"


def test_refresh_forgets_removed_versions() -> None:
    source, _ = counting_source("1", "2")
    registry = ModelRegistry(source, default_model="toy")
    registry.apply_aliases({"toy": {"production": "2"}})
    source.manifests.pop()
    registry.refresh()
    with pytest.raises(ModelNotFound, match=r"names \(production\) version '2', which is gone"):
        registry.resolve()
    assert registry.catalogue() == []


def test_a_version_that_fails_to_load_is_described_with_the_reason() -> None:
    def broken(manifest):
        raise BundleError("model.onnx is corrupt")

    registry = ModelRegistry(InMemoryModelSource([toy_manifest()], broken), default_model="toy")
    described = registry.describe()
    assert described.execution is None
    assert described.load_error == "model.onnx is corrupt"
    with pytest.raises(BundleError):
        registry.runtime()


def test_a_bundle_changed_since_the_listing_is_keyed_as_it_is_now() -> None:
    listed = toy_manifest(Task.BINARY)
    on_disk = msgspec.structs.replace(listed, sha256="e" * 64)
    source = InMemoryModelSource([listed], lambda _: FakeRuntime(on_disk))
    registry = ModelRegistry(source, default_model="toy")
    assert registry.runtime().manifest.identity == on_disk.identity
    assert registry.loaded() == [on_disk.identity]
