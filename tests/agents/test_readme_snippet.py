"""The README section "Plug in your own env / your own agent": shows the example files verbatim, and they run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "README.md"


def test_snippet_shows_the_example_files_verbatim():
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", SNIPPET.read_text(), flags=re.S)
    assert [name for name, _ in blocks] == ["scripts/examples/my_env.py", "scripts/examples/my_agent.py"]
    for name, code in blocks:
        assert code.strip() == (ROOT / name).read_text().strip(), f"{name} and README.md differ"


@pytest.mark.parametrize(
    "module, expected",
    [
        pytest.param("perceptgym.examples.my_env", "success rate 1.000", marks=pytest.mark.slow),
        pytest.param("perceptgym.examples.my_agent", "refused as expected", marks=pytest.mark.slow),
    ],
)
def test_examples_run(module, expected):
    out = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout
