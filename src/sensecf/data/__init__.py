"""Data layer: AI-READI reader and features, synthetic cohort, other datasets, splits, scarcity scenarios."""
