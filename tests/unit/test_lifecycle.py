"""Model lifecycle with fakes: promotion checks the golden set, rollback reads the history, pins win."""

from __future__ import annotations

import msgspec
import pytest

from predictor_core import (
    BundleError,
    GoldenSet,
    ModelLifecycle,
    ModelNotFound,
    ModelRegistry,
    PromotionRefused,
    Task,
    check_golden,
    validate,
)
from tests.fakes import FakeRuntime, InMemoryAliasStore, InMemoryModelSource, toy_manifest

ROWS = [
    {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"},
    {"x": 80.0, "y": 90.0, "n": 0, "flag": False, "colour": None},
]


def with_golden(version: str, task: Task = Task.BINARY, *, skew: float = 0.0):
    """A toy version whose golden set is what the fake model answers (plus `skew`)."""
    manifest = toy_manifest(task, version=version)
    outputs = FakeRuntime(manifest).infer(validate(manifest, ROWS, "records"))
    if task is Task.REGRESSION:
        golden = GoldenSet(records=tuple(ROWS), values=tuple(float(v) + skew for v in outputs.values))
    else:
        golden = GoldenSet(
            records=tuple(ROWS),
            labels=tuple(outputs.labels.tolist()),
            probabilities=tuple(tuple(float(p) + skew for p in row) for row in outputs.probabilities),
        )
    return msgspec.structs.replace(manifest, golden=golden)


def lifecycle(*manifests):
    registry = ModelRegistry(InMemoryModelSource(list(manifests)), default_model="toy")
    aliases = InMemoryAliasStore()
    return ModelLifecycle(registry, aliases), registry, aliases


@pytest.mark.parametrize("task", list(Task))
def test_a_version_reproducing_its_golden_set_passes(task: Task) -> None:
    assert check_golden(FakeRuntime(with_golden("1", task))) is None
    reason = check_golden(FakeRuntime(with_golden("1", task, skew=1e-3)))
    assert reason is not None
    assert "differ" in reason


def test_a_bundle_without_a_golden_set_cannot_take_traffic() -> None:
    assert "no golden set" in (check_golden(FakeRuntime(toy_manifest())) or "")


async def test_promote_serves_the_version_and_rollback_goes_back() -> None:
    life, registry, _ = lifecycle(with_golden("1"), with_golden("2"), with_golden("3"))
    assert registry.resolve().version == "3"  # newest while no alias exists
    await life.move("toy", "production", "1", by="alice")
    assert registry.resolve().version == "1"
    assert registry.serving() == "alias production"
    await life.move("toy", "production", "2", by="bob")
    change = await life.rollback("toy", by="carol")
    assert (change.from_version, change.to_version, change.changed_by) == ("2", "1", "carol")
    assert registry.resolve().version == "1"
    assert [(c.from_version, c.to_version) for c in await life.history("toy")] == [
        ("2", "1"),
        ("1", "2"),
        (None, "1"),
    ]


async def test_a_refused_promotion_changes_nothing() -> None:
    life, registry, aliases = lifecycle(
        with_golden("1"), with_golden("2", skew=0.5), toy_manifest(version="3")
    )
    await life.move("toy", "production", "1", by="alice")
    with pytest.raises(PromotionRefused, match="differ from the golden set"):
        await life.move("toy", "production", "2", by="alice")
    with pytest.raises(PromotionRefused, match="no golden set"):
        await life.move("toy", "production", "3", by="alice")
    with pytest.raises(ModelNotFound):
        await life.move("toy", "production", "9", by="alice")
    assert registry.resolve().version == "1"
    assert len(aliases.changes) == 1


async def test_a_version_that_does_not_load_is_refused() -> None:
    def broken(manifest):
        if manifest.version == "2":
            raise BundleError("model.onnx of toy 2 is corrupt")
        return FakeRuntime(manifest)

    registry = ModelRegistry(
        InMemoryModelSource([with_golden("1"), with_golden("2")], broken), default_model="toy"
    )
    life = ModelLifecycle(registry, InMemoryAliasStore())
    with pytest.raises(BundleError, match="corrupt"):
        await life.move("toy", "production", "2", by="alice")


async def test_rolling_back_a_first_promotion_removes_the_alias() -> None:
    life, registry, _ = lifecycle(with_golden("1"), with_golden("2"))
    with pytest.raises(PromotionRefused, match="no change to roll back"):
        await life.rollback("toy", by="alice")
    await life.move("toy", "production", "1", by="alice")
    change = await life.rollback("toy", by="alice")
    assert (change.from_version, change.to_version) == ("1", None)
    assert registry.resolve().version == "2"  # the newest again
    with pytest.raises(PromotionRefused, match="no change to roll back"):
        await life.rollback("toy", by="alice")


async def test_another_process_sees_a_promotion_at_its_next_sync() -> None:
    source = InMemoryModelSource([with_golden("1"), with_golden("2")])
    shared = InMemoryAliasStore()
    here = ModelLifecycle(ModelRegistry(source, default_model="toy"), shared)
    there_registry = ModelRegistry(source, default_model="toy")
    there = ModelLifecycle(there_registry, shared)
    await here.move("toy", "production", "1", by="alice")
    assert there_registry.resolve().version == "2"
    await there.sync()
    assert there_registry.resolve().version == "1"


def test_a_pin_wins_over_the_production_alias_and_shadow_is_its_own_reference() -> None:
    registry = ModelRegistry(
        InMemoryModelSource([toy_manifest(version=v) for v in "123"]), default_model="toy"
    )
    registry.apply_aliases({"toy": {"production": "2", "shadow": "3"}})
    assert registry.resolve().version == "2"
    assert registry.resolve(alias="shadow").version == "3"
    assert registry.aliased("toy", "shadow").version == "3"
    assert registry.aliased("toy", "canary") is None
    assert registry.describe("toy", "3", load=False).aliases == ("shadow",)
    registry.pin("toy", "1")
    assert (registry.resolve().version, registry.serving()) == ("1", "pinned")
    with pytest.raises(ModelNotFound, match="no alias 'canary'"):
        registry.resolve(alias="canary")


def test_idle_versions_no_alias_serves_are_evicted_and_removed_bundles_at_once() -> None:
    now = [0.0]
    source = InMemoryModelSource([toy_manifest(version=v) for v in "123"])
    registry = ModelRegistry(source, default_model="toy", clock=lambda: now[0])
    registry.apply_aliases({"toy": {"production": "2"}})
    for version in "123":
        registry.runtime("toy", version)
    now[0] = 100.0
    assert registry.evict_idle(600) == []
    now[0] = 1000.0
    assert [i.version for i in registry.evict_idle(600)] == ["1", "3"]  # 2 is what the name serves
    registry.runtime("toy", "1")
    source.manifests[:] = [m for m in source.manifests if m.version != "1"]
    registry.refresh()
    assert [i.version for i in registry.evict_idle(600)] == ["1"]
    assert [i.version for i in registry.loaded()] == ["2"]
