"""What `pip install predictor-core[cpu]` gives: flat top-level packages, the bundles, no training stack."""

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_flat_packages_with_bundles_migrations_and_docs_assets(tmp_path):
    # hatchling's own PEP 517 hook, run from the project root: no pip (uv venvs have none), no network
    build = f"import hatchling.build as b; print(b.build_wheel({str(tmp_path)!r}))"
    subprocess.run([sys.executable, "-c", build], cwd=ROOT, check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {
        "predictor",
        "predictor_core",
        "predictor_onnx",
        "predictor_sql",
        "predictor_litestar",
        "predictor_redis",
    }
    for model in ("breast_cancer", "penguins", "diabetes"):
        assert any(
            n.startswith(f"predictor_onnx/reference/bundles/{model}/") and n.endswith("model.onnx")
            for n in names
        )
    assert "predictor_sql/migrations/script.py.mako" in names
    assert any(n.startswith("predictor_sql/migrations/versions/") for n in names)
    # the docs pages' assets, so that /docs and /docs/redoc work offline (see docs_assets/README.md)
    assets = "predictor_litestar/docs_assets"
    assert {
        f"{assets}/README.md",
        f"{assets}/swagger-ui/swagger-ui-bundle.js",
        f"{assets}/swagger-ui/swagger-ui-standalone-preset.js",
        f"{assets}/swagger-ui/swagger-ui.css",
        f"{assets}/swagger-ui/favicon-32x32.png",
        f"{assets}/swagger-ui/LICENSE",
        f"{assets}/redoc/redoc.standalone.js",
        f"{assets}/redoc/LICENSE",
    } <= set(names)


def test_serving_needs_neither_pandas_nor_scikit_learn():
    """The server and `predict()` on dicts must work with only the `cpu` extra installed (no redis either)."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"pandas", "sklearn", "skl2onnx", "redis"}:
                    raise ImportError(f"{name} is blocked: not installed by the cpu extra")
        sys.meta_path.insert(0, Block())
        from predictor import predict
        from predictor.settings import Settings
        from predictor.wiring import build_model_source
        import predictor_litestar, predictor_sql
        source = build_model_source(Settings())
        for manifest in source.list_models():
            runtime = source.load(manifest.name, manifest.version)
            print(manifest.name, type(predict(manifest.schema.example(), model=manifest.name)).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(result.stdout.split("\n")[:-1]) == [
        "breast_cancer BinaryPrediction",
        "diabetes RegressionPrediction",
        "penguins MulticlassPrediction",
    ]
