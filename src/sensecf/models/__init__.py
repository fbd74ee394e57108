"""Classifiers behind one predict_proba contract."""
