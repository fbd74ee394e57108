"""The counterfactual core below every generator: results, the change rule, constraints, one distance, the
verifier and the classifier contract. Generators, metrics, experiments and reports all build on these."""

from .classifier import ProbabilisticClassifier
from .constraints import changed_features, changed_mask, constraint_violations, project_to_constraints, snap_to_factual
from .distance import FeatureScale
from .result import FAILED, INVALID, STATUSES, VALID, CFResult, as_target_series
from .verify import Verdicts, Verifier

__all__ = ["CFResult", "FAILED", "FeatureScale", "INVALID", "ProbabilisticClassifier", "STATUSES", "VALID",
           "Verdicts", "Verifier", "as_target_series", "changed_features", "changed_mask", "constraint_violations",
           "project_to_constraints", "snap_to_factual"]
