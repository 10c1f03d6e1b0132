"""The example notebooks (examples/*.ipynb) run top to bottom, as committed, and match their source
in examples/build_notebooks.py (the one place they are edited)."""

import importlib.util
from pathlib import Path

import nbformat  # test extras: a missing package must fail here, not skip the notebooks silently
import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
spec = importlib.util.spec_from_file_location("build_notebooks", EXAMPLES / "build_notebooks.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def test_every_notebook_is_committed_with_its_outputs_and_matches_its_source():
    assert sorted(p.stem for p in EXAMPLES.glob("*.ipynb")) == sorted(build.NOTEBOOKS)
    for name, cells in build.NOTEBOOKS.items():
        nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
        assert [c.source for c in nb.cells] == [src for _, src in cells], f"{name}: rerun examples/build_notebooks.py"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs for c in code[-2:]), f"{name} was committed without outputs"
        assert not any(o.output_type == "error" for c in code for o in c.outputs)


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(build.NOTEBOOKS))
def test_notebook_runs(name, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_DATA", str(data_dir.resolve()))  # the kernel inherits the environment
    nb = build.execute(build.notebook(build.NOTEBOOKS[name]), str(tmp_path))
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert CHECKS[name] in text, text[-2000:]


CHECKS = {
    "01_your_data_and_networks": "reloaded, same estimate: True",
    "02_discrete_latents": "disarm",
    "03_classical_vi_vs_sklearn": "adjusted Rand index",
    "04_sentence_vae": "  ->",
}
