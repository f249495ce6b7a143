"""One namespace: everything installs and imports as ``perceptgym.…``, and programs stay thin.

The folders our user fixed (``envs/``, ``agents/``, ``supervised/``, ``scripts/``) are mapped onto
``perceptgym.envs``, ``perceptgym.agents``, ``perceptgym.supervised`` and ``perceptgym`` itself in pyproject.toml.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "scripts": "perceptgym",
    "envs": "perceptgym.envs",
    "agents": "perceptgym.agents",
    "supervised": "perceptgym.supervised",
}
BARE = {"envs", "agents", "supervised", "scripts"}
#: modules under scripts/ that are not programs (the package, its CLI plumbing, the plug-in examples)
NOT_PROGRAMS = {"__init__", "_cli", "cli"}


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_pyproject_lists_every_package_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {v: k for k, v in FOLDERS.items()}
    expected = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            expected.add(".".join((package, *rel)))
    assert set(config["packages"]) == expected


@pytest.mark.parametrize(
    "path", _python_files("envs", "agents", "supervised", "scripts", "tests"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_nothing_imports_the_bare_folder_names(path):
    bare = [n for n in _imports(path) if n.split(".")[0] in BARE]
    assert not bare, f"{path.relative_to(ROOT)} imports {bare}: use perceptgym.…"


def _programs() -> set[str]:
    return {f"perceptgym.{p.stem}" for p in (ROOT / "scripts").glob("*.py") if p.stem not in NOT_PROGRAMS}


@pytest.mark.parametrize(
    "path", _python_files("envs", "agents", "supervised", "scripts"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_module_imports_a_program(path):
    programs = _programs()
    hits = [n for n in _imports(path) if n in programs or n.rsplit(".", 1)[0] in programs]
    assert not hits, f"{path.relative_to(ROOT)} imports the program(s) {hits}: move shared code into the library"


def test_every_program_is_a_subcommand_with_help():
    from perceptgym.cli import BENCHMARKS, PROGRAMS

    modules = {f"perceptgym.{m}" for m, _ in [*PROGRAMS.values(), *BENCHMARKS.values()]}
    assert modules == _programs() - {"perceptgym.examples"}
    for name in [*PROGRAMS, *(f"bench {b}" for b in BENCHMARKS)]:
        out = subprocess.run(
            [sys.executable, "-m", "perceptgym.cli", *name.split(), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, (name, out.stderr)
        assert f"usage: perceptgym {name}" in out.stdout, (name, out.stdout[:300])


def test_unknown_subcommand_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "perceptgym.cli", "trian"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown command 'trian'" in out.stderr


@pytest.mark.slow(seconds=70)
def test_wheel_holds_only_perceptgym_and_installs_beside_agents_and_scripts(tmp_path):
    """A user's own ``agents`` and ``scripts`` packages keep working next to an installed perceptgym wheel."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("perceptgym-*.whl")
    with zipfile.ZipFile(wheel) as z:
        top = {n.split("/")[0] for n in z.namelist() if not n.split("/")[0].endswith(".dist-info")}
        names = z.namelist()
    assert top == {"perceptgym"}
    assert "perceptgym/supervised/checkpoints/cnn.pt" in names and "perceptgym/agents/hyperparams/ppo.yml" in names

    site = tmp_path / "site"
    for pkg in ("agents", "scripts"):
        (site / pkg).mkdir(parents=True)
        (site / pkg / "__init__.py").write_text(f"OWNER = 'user {pkg}'\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(site), "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PATH": "/usr/bin:/bin"}
    check = (
        "import agents, scripts, perceptgym, gymnasium as gym; "
        "assert agents.OWNER == 'user agents' and scripts.OWNER == 'user scripts'; "
        f"assert perceptgym.__file__.startswith({str(site)!r}), perceptgym.__file__; "
        "gym.make('perceptgym/GridDriving-v0').reset(seed=0); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", check], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "perceptgym.cli", "demo", "--quick", "--out", str(work / "demo")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (work / "demo" / "report.md").is_file()
