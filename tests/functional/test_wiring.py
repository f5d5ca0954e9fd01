"""The wiring: a bundle path as the default model is known by its manifest's name."""

import shutil
from pathlib import Path

import pytest

from predictor.settings import Settings
from predictor.wiring import Wiring, build_model_source, default_model_name
from predictor_core import BundleError, ModelNotFound
from predictor_onnx import reference_root


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
