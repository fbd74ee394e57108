"""The whole study (`sensecf run`) into one resumable run folder: config.py (settings), runner.py (steps)."""

from .config import StudyConfig, study_config_from
from .runner import Study, finetune_base

__all__ = ["Study", "StudyConfig", "finetune_base", "study_config_from"]
