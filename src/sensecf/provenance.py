"""What every result file records about how it was made: package versions, and atomic JSON writes."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

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


def write_json(path: Path, obj) -> None:
    """Write JSON through a temporary file and a rename, so an interrupted run never leaves half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)
