"""Every ```python block of README.md and docs/ runs as written (docs/index.md's promise: each example
runs in about two minutes), each in a fresh directory with MNIST found through $VAELAB_DATA."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks():
    for page in PAGES:
        for i, m in enumerate(re.finditer(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)):
            yield pytest.param(page, m.group(1), id=f"{page.relative_to(ROOT)}#{i}")


BLOCKS = list(_blocks())


def test_the_readme_and_the_docs_have_examples():
    names = {p.id.split("#")[0] for p in BLOCKS}
    assert {"README.md", "docs/index.md", "docs/semi_supervised.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("page, code", BLOCKS)
def test_example_runs_as_written(page, code, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_DATA", str(data_dir.resolve()))  # absolute: the example runs elsewhere
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "__main__"}
    exec(compile(code, str(page.relative_to(ROOT)), "exec"), scope)
    CHECKS.get(page.name, lambda scope, tmp_path: None)(scope, tmp_path)


def _readme(scope, tmp_path):
    assert scope["ll"].k == 200 and scope["ll"].n == 1000 and -115 < scope["ll"].mean < -95
    assert (tmp_path / "runs" / "conv" / "last.pt").is_file()
    pairs = zip(scope["same"].state_dict().values(), scope["result"].model.state_dict().values())
    assert all((a == b).all() for a, b in pairs)  # load_run gave back the trained weights


def _semi_supervised(scope, tmp_path):
    assert scope["err"].error < 0.5 and scope["threes"].shape == (8, 1, 8, 8)
    assert (tmp_path / "runs" / "m2-digits" / "best.pt").is_file()


def _index(scope, tmp_path):
    assert -4 < scope["ll"].mean < -3 and scope["ll"].stderr < 0.1  # the two-Gaussian data: log p(x) ~ -3.5 nats
    assert (tmp_path / "runs" / "mog" / "best.pt").is_file()


CHECKS = {"README.md": _readme, "semi_supervised.md": _semi_supervised, "index.md": _index}
