"""What every result file records about how it was made: package versions; JSON-safe values."""

from __future__ import annotations

import math
import platform
from importlib import metadata

import numpy as np

TRACKED_PACKAGES = ("sensecf", "numpy", "pandas", "scikit-learn", "torch", "transformers", "peft", "trl",
                    "accelerate", "bitsandbytes", "dice-ml", "cfnow", "nicex", "imbalanced-learn")


def package_versions() -> dict[str, str | None]:
    """Versions of python, the platform and the packages that shape the results (None when absent)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in TRACKED_PACKAGES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def json_safe(obj):
    """`obj` with string keys, numpy scalars as Python numbers, floats rounded to 6 digits, NaN/inf as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) or math.isinf(obj) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
