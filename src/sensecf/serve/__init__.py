"""`sensecf serve`: a local what-if web app over a run folder (or a dataset): score edited rows with the run's
classifier, compare the run's counterfactuals, ask any method for a new one, export the intervention."""
