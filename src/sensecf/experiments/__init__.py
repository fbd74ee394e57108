"""Experiments: classifier curve (Fig 1), benchmark (Table III), augmentation (Table IV, Fig 7), intervention."""
