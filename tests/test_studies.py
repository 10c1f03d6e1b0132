"""The study registry and its one driver (issue 42): a study is one module and one registration; the
driver owns the budget lookup, the output folder, the results files and the provenance stamp."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from vaelab.cli import main
from vaelab.errors import ConfigError
from vaelab.experiments import EXPERIMENTS, Study, StudyResult, get_study, register_study, studies
from vaelab.experiments import study as study_mod

ROOT = Path(__file__).parents[1]


@pytest.fixture
def toy_study():
    seen = []

    def body(ctx):
        seen.append((ctx.budget, ctx.quick, ctx.options))
        (ctx.runs / "r").mkdir(parents=True)
        return StudyResult({"models": {"a": {"name": "a", "nll": 1.5}}}, f"# toy\n\nbudget {ctx.budget}\n")

    study = register_study(Study("toy-study", body, {"small": 1, "big": 2}, quick=0, options={"width": 3},
                                 fresh_runs=True))  # fmt: skip
    yield study, seen
    del study_mod._STUDIES["toy-study"]


def test_a_registered_study_runs_through_the_cli_with_its_budget_options_and_provenance(tmp_path, toy_study):
    study, seen = toy_study
    assert "toy-study" in EXPERIMENTS and "toy-study" in studies()
    out = tmp_path / "out"
    assert main(["reproduce", "toy-study", "--budget", "big", "--out", str(out)]) == 0
    assert seen == [(2, False, {"width": 3})]
    assert json.loads((out / "results.json").read_text())["models"]["a"]["nll"] == 1.5
    assert (out / "results.csv").read_text().splitlines() == ["name,nll", "a,1.5"]
    report = (out / "report.md").read_text()
    assert report.startswith("# toy\n\nbudget 2\n") and "vaelab reproduce toy-study --budget big" in report
    (out / "runs" / "stale").mkdir()
    study.run(out, quick=True)  # a fresh reproduction: runs/ cleared first
    assert seen[-1] == (0, True, {"width": 3}) and not (out / "runs" / "stale").exists()


def test_an_unknown_budget_study_or_option_is_one_line_naming_the_choices(tmp_path, toy_study, capsys):
    study, _ = toy_study
    assert main(["reproduce", "toy-study", "--budget", "huge", "--out", str(tmp_path / "o")]) == 2
    assert "--budget huge is not defined for toy-study; choose from small, big" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="unknown study 'nope'; choose one of: aevb-mnist"):
        get_study("nope")
    with pytest.raises(ConfigError, match="toy-study takes no option depth; its options: width"):
        study.run(tmp_path / "o", depth=1)
    assert main(["reproduce", "toy-study", "--budget-minutes", "5", "--out", str(tmp_path / "o")]) == 2
    assert "--budget-minutes does not apply to toy-study" in capsys.readouterr().err
    assert main(["reproduce", "toy-study", "--budget", "big", "--quick", "--out", str(tmp_path / "o")]) == 2
    assert "--quick runs toy-study's smoke-test budget, not --budget big" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_cli_names_no_study_and_every_study_module_registers_one():
    cli = (ROOT / "src/vaelab/cli.py").read_text()
    assert not [name for name in studies() if re.search(rf"\b{re.escape(name)}\b", cli)]
    found = studies()
    declared = [m.STUDY for m in sys.modules.values() if m and m.__name__.startswith("vaelab.experiments.")
                and hasattr(m, "STUDY")]  # fmt: skip
    assert len(declared) == len(found) >= 13 and all(found[s.name] is s for s in declared)


def test_results_csv_quotes_labels_with_commas(tmp_path):
    import csv

    from vaelab.experiments.study import write_results

    write_results(tmp_path, {"models": {"a": {"name": "a", "label": "Caltech silhouettes, VampPrior", "nll": 1.5,
                                              "curve": [1, 2]}}})  # fmt: skip
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"name": "a", "label": "Caltech silhouettes, VampPrior", "nll": "1.5"}]
