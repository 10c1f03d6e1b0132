"""The README's Python example runs as written (on a small slice of MNIST, one epoch)."""

import re
from pathlib import Path

import vaelab

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_example_runs(data_dir, tmp_path, monkeypatch):
    text = README.read_text()
    code = re.search(r"## In Python: your own networks\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 15
    real = vaelab.load_data

    def small(cfg, likelihood):  # 500 training and 50 test images keep it quick
        d = real(cfg, likelihood)
        d.train, d.valid, d.test = d.train[:500], d.valid[:100], d.test[:50]
        return d

    monkeypatch.setattr(vaelab, "load_data", small)
    monkeypatch.setenv("VAELAB_DATA", str(data_dir.resolve()))  # absolute: the test changes directory
    monkeypatch.chdir(tmp_path)
    code = code.replace('"train.epochs": 5', '"train.epochs": 1').replace("k=1000", "k=20")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["ll"].k == 20 and scope["ll"].n == 50
    assert (tmp_path / "runs" / "conv" / "last.pt").is_file()
    assert all(
        (a == b).all() for a, b in zip(scope["same"].state_dict().values(), scope["result"].model.state_dict().values())
    )
