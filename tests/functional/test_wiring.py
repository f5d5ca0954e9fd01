"""The wiring: a bundle path as the default model is known by its manifest's name; a serving wiring's
garbage-collector settings."""

import gc
import shutil
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest

from predictor.settings import Settings
from predictor.wiring import GC_YOUNG_THRESHOLD, Wiring, build_model_source, default_model_name
from predictor_core import BundleError, InvalidFeedback, ModelManifest, ModelNotFound
from predictor_onnx import BundleDirectory, OnnxRuntime, reference_root

EXAMPLE = ModelManifest.from_json(
    (reference_root() / "breast_cancer" / "1.0.0" / "manifest.json").read_bytes()
).schema.example()


def test_a_bundle_path_as_default_model_is_served_under_its_manifest_name(tmp_path: Path) -> None:
    bundle = tmp_path / "anywhere"
    shutil.copytree(reference_root() / "penguins" / "1.0.0", bundle)
    settings = Settings(model=str(bundle))
    assert default_model_name(settings) == "penguins"
    registry = Wiring(Settings(model=str(bundle), record=False)).registry
    assert registry.default_model == "penguins"
    assert registry.runtime().manifest.name == "penguins"
    assert registry.runtime("penguins").manifest.name == "penguins"
    with pytest.raises(ModelNotFound):  # a name is never read as a path
        build_model_source(Settings()).load(str(bundle), "1.0.0")


def test_a_missing_bundle_path_fails_at_wiring_time(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"manifest\.json"):
        Wiring(Settings(model=str(tmp_path / "nope"), record=False))


class CountingBundles(BundleDirectory):
    """The real bundle directories, counting the ONNX sessions they start."""

    loads: ClassVar[list[tuple[str, str]]] = []

    def load(self, name: str, version: str, /) -> OnnxRuntime:
        self.loads.append((name, version))
        return super().load(name, version)


async def test_a_model_and_its_explicit_version_share_one_onnx_session() -> None:
    source = CountingBundles([reference_root()])
    CountingBundles.loads.clear()
    wiring = Wiring(Settings(record=False), source=source)
    unnamed = await wiring.service.predict([EXAMPLE], model="breast_cancer")
    pinned = await wiring.service.predict([EXAMPLE], model="breast_cancer", version="1.0.0")
    default = await wiring.service.predict([EXAMPLE])
    assert unnamed[0].model == pinned[0].model == default[0].model
    assert CountingBundles.loads == [("breast_cancer", "1.0.0")]
    assert wiring.registry.runtime("breast_cancer") is wiring.registry.runtime("breast_cancer", "1.0.0")


async def test_feedback_for_a_recorded_prediction_works_after_its_bundle_is_removed(tmp_path: Path) -> None:
    bundle = tmp_path / "models" / "penguins_v1" / "1.0.0"
    shutil.copytree(reference_root() / "penguins" / "1.0.0", bundle)
    manifest = ModelManifest.from_json((bundle / "manifest.json").read_bytes())
    (bundle / "manifest.json").write_bytes(msgspec.structs.replace(manifest, name="penguins_v1").to_json())
    settings = Settings(
        model="penguins_v1",
        model_dirs=(str(tmp_path / "models"),),
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
    )
    record = manifest.schema.example()
    async with Wiring(settings).running() as wiring:
        (prediction,) = await wiring.service.predict([record])
    shutil.rmtree(bundle.parent)
    restarted = Wiring(msgspec.structs.replace(settings, model="penguins"))  # a new process: no penguins_v1
    with pytest.raises(ModelNotFound):
        restarted.registry.resolve("penguins_v1")
    await restarted.start()
    try:
        feedback = await restarted.service.record_feedback(prediction.prediction_id, "Gentoo")
        assert feedback.actual == "Gentoo"
        with pytest.raises(InvalidFeedback, match="one of the classes of 'penguins_v1'"):
            await restarted.service.record_feedback(prediction.prediction_id, "Emperor")
    finally:
        await restarted.close()


async def test_a_serving_wiring_freezes_start_up_and_collects_young_objects_rarely() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    wiring = Wiring(Settings(record=False))
    try:
        async with wiring.lifespan(None):
            assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
            assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's sight
            assert (await wiring.service.predict([EXAMPLE]))[0].model.name == "breast_cancer"
        # serving over, the process goes on with the collector as it found it
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_serving_leaves_frozen_what_someone_else_froze() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        async with Wiring(Settings(record=False)).lifespan(None):
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
