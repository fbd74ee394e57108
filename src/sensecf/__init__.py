"""sensecf: LLM-generated counterfactual explanations for sensor-derived health data."""

__version__ = "0.1.0"
