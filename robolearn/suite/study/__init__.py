"""The research study (`robolearn suite study`, docs/research.md): pretrain V-Cond, V-Gen and R-MVP on a clip
corpus at equal compute with the real LM, run the suite on them against random weights and a scratch CNN over
seeds, probe what each learned, and report the hypothesis check. Resumable stage by stage (stages.py)."""

from robolearn.suite.study.config import StudyConfig, StudyError
from robolearn.suite.study.pipeline import run_study

__all__ = ["StudyConfig", "StudyError", "run_study"]
