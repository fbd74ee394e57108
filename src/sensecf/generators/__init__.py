"""Counterfactual generators behind one protocol (see base.py) and their registry."""
