"""sensecf: LLM-generated counterfactual explanations for sensor-derived health data.

The public API (names resolve on first use, so `import sensecf` stays light):

    from sensecf import Schema, FeatureSpec, generate_counterfactuals, cf_metrics
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Schema": "sensecf.schema", "FeatureSpec": "sensecf.schema",
    "Dataset": "sensecf.data.dataset", "load_dataset": "sensecf.data.loading",
    "patient_split": "sensecf.data.split",
    "Classifier": "sensecf.models.classifiers", "train_classifier": "sensecf.models.classifiers",
    "evaluate": "sensecf.models.classifiers",
    "CFResult": "sensecf.cf", "Verifier": "sensecf.cf",
    "GeneratorContext": "sensecf.generators.base", "build_generator": "sensecf.generators.base",
    "available_methods": "sensecf.generators.base",
    "generate_counterfactuals": "sensecf.api",
    "cf_metrics": "sensecf.metrics", "per_class_metrics": "sensecf.metrics",
    "run_benchmark": "sensecf.experiments.benchmark", "run_augmentation": "sensecf.experiments.augmentation",
    "intervention_view": "sensecf.experiments.intervention", "narrative": "sensecf.experiments.intervention",
    "Study": "sensecf.study", "StudyConfig": "sensecf.study",
    "set_verbose": "sensecf.console",
    "SenseCFError": "sensecf.errors", "ConfigError": "sensecf.errors", "DataError": "sensecf.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sensecf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
