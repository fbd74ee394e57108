"""Reader and feature extraction for the AI-READI raw file layout, and the synthetic cohort writer."""
