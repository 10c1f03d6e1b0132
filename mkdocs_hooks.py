"""mkdocs hook: one page per `vaelab reproduce` study, generated from the committed
results/NAME/report.md and its figures, so the site shows exactly what the study wrote (no copy
to drift). A study without a committed report gets its module docstring and says so."""

from __future__ import annotations

import ast
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).parent


def _studies() -> dict[str, Path]:
    tree = ast.parse((ROOT / "src/vaelab/experiments/__init__.py").read_text())
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "EXPERIMENTS")
    names = ast.literal_eval(table)
    return {name: ROOT / "src" / (module.replace(".", "/") + ".py") for name, module in names.items()}


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
    return files
