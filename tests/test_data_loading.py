"""load_dataset: every accepted spec, the synthetic cohort cache, and the errors for bad specs."""

import pytest

from sensecf.data import loading
from sensecf.data.loading import load_dataset
from sensecf.errors import ConfigError


def test_uci_heart_and_csv_specs(tmp_path):
    heart = load_dataset("uci-heart")
    assert heart.name == "uci-heart" and len(heart) == 746
    csv, schema = tmp_path / "h.csv", tmp_path / "h.yaml"
    heart.frame.to_csv(csv, index=False)
    heart.schema.to_yaml(schema)
    ds = load_dataset(str(csv), schema=str(schema))
    assert len(ds) == 746 and ds.schema.feature_names == heart.schema.feature_names
    with pytest.raises(ConfigError, match="needs a schema"):
        load_dataset(str(csv))


def test_bad_specs(tmp_path):
    with pytest.raises(ConfigError, match="accepted: 'synthetic', 'uci-heart'"):
        load_dataset("imagenet")
    with pytest.raises(ConfigError, match="CSV data only"):
        load_dataset("uci-heart", schema=tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_dataset(str(tmp_path / "missing.csv"), schema=tmp_path / "s.yaml")


@pytest.mark.slow
def test_synthetic_is_written_once_and_read_like_a_folder(tmp_path, monkeypatch):
    from sensecf.data.aireadi import synth

    calls = []
    real = synth.write_synthetic_cohort
    monkeypatch.setattr(synth, "write_synthetic_cohort", lambda *a, **k: calls.append(a) or real(*a, **k))
    ds = load_dataset("synthetic", seed=1, participants=6, days=3, cache_dir=tmp_path)
    assert ds.name == "synthetic" and len(ds) > 50 and ds.groups.nunique() >= 4
    assert set(ds.y) == {0, 1} and "6 participants, 3 days, seed 1" in ds.notes[0]
    again = load_dataset("synthetic", seed=1, participants=6, days=3, cache_dir=tmp_path)
    assert len(calls) == 1 and again.frame.equals(ds.frame)
    root = loading.synthetic_cohort(6, 3, 1, tmp_path)
    assert root.is_dir() and not list(tmp_path.glob(".writing-*"))
    folder = load_dataset(str(root))
    assert folder.frame.equals(ds.frame)
