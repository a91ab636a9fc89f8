"""The evaluation: AnyGPT's table (Zhan et al., ACL 2024, section 5) on AnyWorld, scored by judges
that share nothing with the model. `evaluate` runs it; `harness.TASKS` lists the tasks."""

from anyseq.evaluation.cli import evaluate

__all__ = ["evaluate"]
