"""The `vaelab reproduce` studies: each one module that declares a :class:`~vaelab.experiments.study.Study`
(budgets, quick budget, options) around a body that trains, evaluates, draws and reports, and registers it.
The driver (:mod:`vaelab.experiments.study`) runs any of them by name.
"""

from .study import Study, StudyNames, StudyResult, StudyRun, get_study, register_study, studies

#: the registered study names (found when first asked); ``vaelab reproduce``'s choices
EXPERIMENTS = StudyNames()

__all__ = ["EXPERIMENTS", "Study", "StudyResult", "StudyRun", "get_study", "register_study", "studies"]
