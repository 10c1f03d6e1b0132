"""mkdocs hook: one page per `vaelab reproduce` study, generated from the committed
results/NAME/report.md and its figures, so the site shows exactly what the study wrote (no copy
to drift). A study without a committed report gets its module docstring and says so. Likewise one
page per example notebook (examples/*.ipynb), with the outputs it was committed with."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).parent


def _studies() -> dict[str, Path]:
    """Every registered study and the file of its module."""
    import sys

    from vaelab.experiments import studies

    return {name: Path(sys.modules[study.body.__module__].__file__ or "") for name, study in studies().items()}


def on_files(files, config):
    for name, module in _studies().items():
        report = ROOT / "results" / name / "report.md"
        if report.is_file():
            content = report.read_text()
            for png in report.parent.glob("*.png"):
                files.append(File.generated(config, f"studies/{name}/{png.name}", abs_src_path=str(png)))
        else:
            doc = ast.get_docstring(ast.parse(module.read_text())) or ""
            content = f"# {name}\n\nNo report is committed for this study yet; run it with its command below.\n\n{doc}\n"
        files.append(File.generated(config, f"studies/{name}/index.md", content=content))
    for nb in sorted((ROOT / "examples").glob("*.ipynb")):
        files.append(File.generated(config, f"examples/{nb.stem}.md", content=_notebook_page(nb, config, files)))
    return files


def _notebook_page(path: Path, config, files) -> str:
    """Markdown of a notebook: its markdown cells, code cells as python blocks, stdout and PNG outputs."""
    nb = json.loads(path.read_text())
    note = (
        f"*The notebook `examples/{path.name}` as committed, with its outputs; regenerate it with "
        f"`python examples/build_notebooks.py {path.stem}`.*"
    )
    parts = []
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            parts += [src] + ([note] if i == 0 else [])
            continue
        parts.append(f"```python\n{src}\n```")
        for j, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {})
            if out["output_type"] == "stream" and out.get("name") == "stdout":
                parts.append("```text\n" + "".join(out["text"]).rstrip() + "\n```")
            elif "image/png" in data:
                name = f"{path.stem}_{i}_{j}.png"
                files.append(File.generated(config, f"examples/{name}", content=base64.b64decode(data["image/png"])))
                parts.append(f"![output]({name})")
    return "\n\n".join(parts) + "\n"
