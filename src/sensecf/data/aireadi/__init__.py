"""Reader and feature extraction for the AI-READI raw file layout, and the synthetic cohort writer."""

# The default synthetic cohort's shape: many people, few days each (about 24,000 windows). Against 120 people x 10
# days (more windows) it halves the NN's test ECE (0.10-0.11 -> 0.04-0.06 over cohort seeds 0-2) and makes halving
# class 0 (scenario B) cost macro-F1 for every seed: twice the people let early stopping and the test set see more of
# the between-person spread (benchmarks/results/synthetic.md). Real AI-READI has ~1,000 people, ~10 days of CGM each.
DEFAULT_PARTICIPANTS, DEFAULT_DAYS = 200, 5
