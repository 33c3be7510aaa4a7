"""The install files agree: environment.yml mirrors pyproject's pins, the lock holds them, torch stays CPU."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pins(requirements) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(==|<=|>=|<|~=)\s*([^\s;]+)\s*", req)
        assert m, f"requirement {req!r} is not pinned as name==version"
        out[m.group(1).lower().replace("_", "-")] = m.group(3) + m.group(4)
    return out


def pyproject_pins() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    return _pins(deps)


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: list"
    conda_pkgs = [d for d in env["dependencies"] if isinstance(d, str)]
    assert all(p.split("=")[0] in ("python", "pip") for p in conda_pkgs), (
        f"only python and pip may come from conda; put these under pip: {conda_pkgs}"
    )
    return _pins([r for r in pip_lists[0] if not r.startswith("-e")])


def test_environment_yml_mirrors_pyproject():
    py, env = pyproject_pins(), environment_pins()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    differ = {name: (py[name], env[name]) for name in py if py[name] != env[name]}
    assert not differ, f"pins differ (pyproject, environment.yml): {differ}"


def test_every_dependency_is_pinned_exactly_and_torch_is_the_cpu_wheel():
    pins = pyproject_pins()
    assert all(spec.startswith("==") for spec in pins.values()), pins
    assert pins["torch"] == "==2.13.0"
    assert pins["jupyter-book"].startswith("==1."), "Jupyter Book 2 cannot build offline"


def test_lock_file_agrees_with_pyproject():
    lock = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[name.lower().replace("_", "-")] = "==" + version
    for name, spec in pyproject_pins().items():
        assert lock.get(name) == spec, f"constraints.txt has {name}{lock.get(name)} but pyproject pins {spec}; run `make lock`"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make book" in readme
