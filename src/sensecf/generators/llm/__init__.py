"""LLM counterfactual generator: prompt, parse, verify-and-repair."""
