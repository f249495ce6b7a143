"""The documentation (README.md and docs/*.md): what it shows runs, what it links exists, the site builds.

Every fenced code block is one of:

- ```python: run in a fresh interpreter (in a temporary folder), unless marked ``<!-- no-run -->``;
- ```bash: each command is checked against its ``--help`` (the program exists and knows every ``--flag``
  used); marked ``<!-- run -->`` the whole block runs in a temporary folder instead;
- ```yaml: parsed; an excerpt headed ``# <path> (excerpt)`` must agree with that file;
- ```text (or another language that cannot run, as listed in NOT_RUN): shown only.

A block without a language, or with one not listed here, fails: mark it. Markers are HTML comments on the
lines right above the fence, one per comment: ``no-run``, ``run``, ``slow`` (the test is marked slow) and
``expect: TEXT`` (the output must contain TEXT). A python block may include a file with pymdownx.snippets
(``--8<-- "path"``), as mkdocs does when it builds the site; ``ruff format`` formats python blocks in Markdown,
so such a block sits between ``<!-- fmt: off -->`` and ``<!-- fmt: on -->``, or ruff would rewrite the include.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
BIN = Path(sys.executable).parent  # the venv that runs the tests: its perceptgym, mkdocs, pytest
RUNS = ("python", "bash")
NOT_RUN = ("text", "yaml")
MARKERS = ("no-run", "run", "slow", "expect", "fmt")  # fmt: off / on: ruff format leaves the block alone
SNIPPET = re.compile(r'^-{1,}8<-{1,} "([^"]+)"$')
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")
# A wide terminal, so that no help text wraps a flag's name; headless SDL for the commands that render.
ENV = {**os.environ, "COLUMNS": "200", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "MPLBACKEND": "Agg"}


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    markers: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def has(self, marker: str) -> bool:
        return any(m == marker or m.startswith(marker + ":") for m in self.markers)

    @property
    def expected(self) -> list[str]:
        return [m.partition(":")[2].strip() for m in self.markers if m.startswith("expect:")]


def read_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, with the markers written on the lines right above each."""
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        markers, j = [], i - 1
        while j >= 0 and MARKER.match(lines[j]):
            markers.insert(0, MARKER.match(lines[j]).group(1))
            j -= 1
        end = next((k for k in range(i + 1, len(lines)) if lines[k].strip() == "```"), None)
        assert end is not None, f"{page}:{i + 1}: code block never closed"
        blocks.append(Block(page, i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n", markers))
        i = end + 1
    return blocks


BLOCKS = [b for page in PAGES for b in read_blocks(page)]


def expand_snippets(code: str) -> str:
    """Replaces ``--8<-- "path"`` lines by the file (relative to the repository root), as the site build does."""
    out = []
    for line in code.splitlines(keepends=True):
        include = SNIPPET.match(line.strip())
        if include:
            path = ROOT / include.group(1)
            assert path.is_file(), f"snippet {include.group(1)} does not exist"
            out.append(path.read_text())
        else:
            out.append(line)
    return "".join(out)


def params(lang: str) -> list:
    return [
        pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.has("slow") else [])
        for b in BLOCKS
        if b.lang == lang and not b.has("no-run")
    ]


def test_pages_have_code_blocks_to_check():
    langs = {b.lang for b in BLOCKS}
    assert {"python", "bash"} <= langs, f"found only {langs}: is the fence parser broken?"
    assert len(params("python")) >= 10


def test_every_block_is_marked():
    bad = []
    for b in BLOCKS:
        if b.lang not in RUNS + NOT_RUN:
            bad.append(f"{b.id}: language {b.lang!r}: use one of {RUNS + NOT_RUN} (```text for what does not run)")
        for m in b.markers:
            if m.partition(":")[0].strip() not in MARKERS:
                bad.append(f"{b.id}: unknown marker <!-- {m} -->; known: {MARKERS}")
        if b.has("run") and b.has("no-run"):
            bad.append(f"{b.id}: marked both run and no-run")
    assert not bad, "\n".join(bad)


def _check_output(block: Block, out: subprocess.CompletedProcess) -> None:
    tail = f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert out.returncode == 0, f"{block.id} failed (exit {out.returncode}):\n{tail}"
    for text in block.expected:
        assert text in out.stdout, f"{block.id}: output lacks {text!r}:\n{out.stdout[-3000:]}"


@pytest.mark.parametrize("block", params("python"))
def test_python_block_runs(block: Block, tmp_path: Path):
    script = tmp_path / "block.py"
    script.write_text(expand_snippets(block.code))
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600
    )
    _check_output(block, out)


# ---- shell blocks --------------------------------------------------------------------------------------------
def shell_commands(code: str) -> list[list[str]]:
    """Each command of a shell block as argv (comments, ``\\`` continuations, ``&&`` and ``VAR=value`` handled)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        argv: list[str] = []
        for token in [*shlex.split(line, comments=True), "&&"]:
            if token in ("&&", ";", "||"):
                while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", argv[0]):
                    argv.pop(0)
                if argv:
                    commands.append(argv)
                argv = []
            else:
                argv.append(token)
    return commands


def help_command(argv: list[str]) -> tuple[str, ...] | None:
    """The command that prints ``argv``'s help; None when there is none to ask (``bash setup.sh``)."""
    program = Path(argv[0]).name
    if program == "perceptgym":
        sub = argv[1:3] if argv[1:2] == ["bench"] else argv[1:2]
        return ("perceptgym", *sub, "--help")
    if program.startswith("python") and argv[1:2] == ["-m"]:
        return (sys.executable, "-m", argv[2], "--help")
    if program == "mkdocs":
        return (sys.executable, "-m", "mkdocs", argv[1], "--help")
    if argv[:2] == ["bash", "setup.sh"]:
        assert (ROOT / "setup.sh").is_file()
        return None
    raise AssertionError(
        f"{' '.join(argv)}: no check for {argv[0]!r} commands; mark the block <!-- run --> or <!-- no-run -->, "
        "or teach tests/test_docs.py how to check it"
    )


# One interpreter asks every perceptgym subcommand for its help (``perceptgym`` is ``perceptgym.cli:main``):
# a process per command would import torch a dozen times.
HELP_DRIVER = """
import contextlib, io, json, sys
from perceptgym.cli import main
out = {}
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    out[" ".join(argv)] = [code, buf.getvalue()]
print(json.dumps(out))
"""


def help_texts(commands: set[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """The help output of each command; fails naming a command whose help does not exit 0."""
    texts = {}
    ours = sorted(c for c in commands if c[0] == "perceptgym")
    if ours:
        argvs = json.dumps([list(c[1:]) for c in ours])
        out = subprocess.run(
            [sys.executable, "-c", HELP_DRIVER, argvs], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        answers = json.loads(out.stdout)
        for c in ours:
            code, text = answers[" ".join(c[1:])]
            assert code == 0, f"{' '.join(c)} exited {code}:\n{text}"
            texts[c] = text
    for c in commands - set(ours):
        out = subprocess.run(list(c), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{' '.join(c)} failed:\n{out.stdout}\n{out.stderr}"
        texts[c] = out.stdout
    return texts


def check_commands(blocks: list[Block]) -> None:
    """Every command of these shell blocks names a program we can ask, and every --flag is in its help."""
    checks = []
    for block in blocks:
        commands = shell_commands(block.code)
        assert commands, f"{block.id}: no command in a bash block"
        checks += [(block, argv, help_command(argv)) for argv in commands]
    texts = help_texts({c for _, _, c in checks if c is not None})
    bad = []
    for block, argv, command in checks:
        for flag in sorted({t.partition("=")[0] for t in argv if t.startswith("--")} if command else ()):
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", texts[command]):
                bad.append(f"{block.id}: {' '.join(argv)}: `{' '.join(command)}` does not list {flag}")
    assert not bad, "\n".join(bad)


def test_shell_commands_exist_with_their_flags():
    check_commands([b for b in BLOCKS if b.lang == "bash" and not b.has("run") and not b.has("no-run")])


@pytest.mark.parametrize("block", [p for p in params("bash") if p.values[0].has("run")])
def test_shell_block_runs(block: Block, tmp_path: Path):
    env = {**ENV, "PATH": f"{BIN}{os.pathsep}{ENV['PATH']}"}
    command = ["bash", "-euo", "pipefail", "-c", block.code]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    _check_output(block, out)


def test_shell_commands_are_split_like_bash():
    code = 'A=1 perceptgym play --keys up && python -m pytest -m "not slow"  # comment\nx \\\n  --y\n'
    assert shell_commands(code) == [
        ["perceptgym", "play", "--keys", "up"],
        ["python", "-m", "pytest", "-m", "not slow"],
        ["x", "--y"],
    ]
    with pytest.raises(AssertionError, match="no check for 'rm'"):
        help_command(["rm", "-rf", "runs"])


def test_help_check_catches_an_unknown_flag(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("```bash\nperceptgym train --env Taxi-v4 --no-such-flag 1\n```\n")
    (block,) = read_blocks(page)
    block.page = ROOT / "README.md"  # ids are relative to the repository
    with pytest.raises(AssertionError, match="does not list --no-such-flag"):
        check_commands([block])


# ---- yaml blocks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS if b.lang == "yaml"])
def test_yaml_block(block: Block):
    shown = yaml.safe_load(block.code)
    excerpt = re.match(r"# (\S+) \(excerpt\)", block.code)
    if excerpt:
        whole = yaml.safe_load((ROOT / excerpt.group(1)).read_text())
        for key, value in shown.items():
            assert whole.get(key) == value, f"{block.id}: entry {key!r} differs from {excerpt.group(1)}"


# ---- the plug-in page shows the example files, as they are -----------------------------------------------------
def test_plug_in_page_includes_the_examples():
    includes = [
        SNIPPET.match(line.strip()).group(1)
        for b in read_blocks(DOCS / "plug-in.md")
        if b.lang == "python"
        for line in b.code.splitlines()
        if SNIPPET.match(line.strip())
    ]
    assert includes == ["scripts/examples/my_env.py", "scripts/examples/my_agent.py"]
    assert all((ROOT / path).is_file() for path in includes)


# ---- the site --------------------------------------------------------------------------------------------------
def test_site_builds_strict_without_warnings(tmp_path: Path):
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site), "-f", str(ROOT / "mkdocs.yml")],
        cwd=ROOT,
        env={**ENV, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert "WARNING" not in log, log
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    for entry in nav:
        (page,) = entry.values()
        html = site / ("index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html")
        assert html.is_file(), f"{page} was not built"
    plug_in = (site / "plug-in" / "index.html").read_text()
    assert "CorridorEnv" in plug_in and "MonteCarloAgent" in plug_in  # the includes were resolved


# ---- the README ------------------------------------------------------------------------------------------------
def test_readme_is_short():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines; the rest belongs in docs/"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.partition("#")[0] for t in targets if not re.match(r"[a-z]+://", t)]
    assert len(local) >= 10
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_and_commands_page_name_every_command():
    from perceptgym.cli import BENCHMARKS, PROGRAMS

    readme = (ROOT / "README.md").read_text()
    commands = (DOCS / "commands.md").read_text()
    for name in PROGRAMS:
        assert f"`perceptgym {name}" in readme, f"README.md's command table lacks {name}"
        assert f"\n## {name}\n" in commands, f"docs/commands.md has no section for {name}"
    for name in BENCHMARKS:
        assert f"`{name}`" in readme and f"| `{name}` |" in commands, f"bench {name} is not documented"


# ---- the measured numbers --------------------------------------------------------------------------------------
def ladder_rows(page: Path) -> dict[str, list[str]]:
    """The perception-ladder table of a page: rung -> its cells."""
    lines = page.read_text().splitlines()
    start = lines.index("| rung | return | success rate | wrong-stop rate | collision rate | seeds |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_ladder_table_is_the_summary_of_ladder_json(page: str):
    summary = json.loads((DOCS / "ladder.json").read_text())
    expected = {}
    for rung, seeds in summary["rungs"].items():
        cells = []
        for key in ("mean_return", "success_rate", "wrong_stop_rate", "collision_rate"):
            values = np.array([s[key] for s in seeds])
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}")  # std over seeds, as ladder.md writes it
        expected[rung] = [*cells, str(len(seeds))]
    assert ladder_rows(ROOT / page) == expected
    assert f"{summary['optimal_return']:.3f}" == "0.731"
    assert "Optimal expected return (value iteration on the true state): 0.731" in (ROOT / page).read_text()
