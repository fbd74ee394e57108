"""Patient-level split, recommended_split, stratified subsampling and scarcity scenarios A/B/C."""

import numpy as np
import pandas as pd
import pytest

from sensecf.data.dataset import Dataset
from sensecf.data.split import patient_split, scarcity_scenario, subsample_fraction
from sensecf.errors import ConfigError, DataError
from sensecf.schema import FeatureSpec, Schema


def grouped(n_groups=30, rows=6, seed=0, recommended=None) -> Dataset:
    """n_groups participants with `rows` windows each; labels mixed within participants."""
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"p{i:02d}" for i in range(n_groups)], rows)
    frame = pd.DataFrame({"participant_id": pid, "x": rng.normal(size=len(pid)),
                          "label": rng.integers(0, 2, len(pid))})
    if recommended is not None:
        frame["recommended_split"] = np.repeat(recommended, rows)
    schema = Schema("toy", [FeatureSpec("x")], group="participant_id")
    return Dataset("toy", schema, frame)


@pytest.fixture(scope="module")
def heart(uci_heart):
    return uci_heart


def test_group_split_keeps_participants_apart_and_is_seeded():
    ds = grouped()
    train, test = patient_split(ds, test_size=0.2, seed=3)
    assert not set(train.groups) & set(test.groups)
    assert len(train) + len(test) == len(ds) and test.groups.nunique() == 6
    again, _ = patient_split(ds, test_size=0.2, seed=3)
    other, _ = patient_split(ds, test_size=0.2, seed=4)
    assert again.frame.index.equals(train.frame.index)
    assert not other.frame.index.equals(train.frame.index)
    assert "GroupShuffleSplit" in train.notes[-1]


def test_recommended_split_honoured_and_optional():
    rec = ["train"] * 20 + ["val"] * 5 + ["test"] * 5
    ds = grouped(recommended=rec)
    train, test = patient_split(ds, seed=0)
    assert set(test.frame["recommended_split"]) == {"test"}
    assert set(train.frame["recommended_split"]) == {"train", "val"}
    assert test.groups.nunique() == 5 and train.groups.nunique() == 25
    own_train, own_test = patient_split(ds, seed=0, use_recommended=False)
    assert not set(own_train.groups) & set(own_test.groups)
    assert set(own_test.frame["recommended_split"]) != {"test"}


def test_recommended_split_errors():
    ds = grouped(recommended=["train"] * 25 + ["test"] * 5)
    ds.frame.loc[0, "recommended_split"] = "test"          # p00 now on both sides
    with pytest.raises(DataError, match="both train and test") as err:
        patient_split(ds)
    assert err.value.participant == "p00"
    ds.frame.loc[0, "recommended_split"] = "holdout"
    with pytest.raises(DataError, match="'holdout'") as err:
        patient_split(ds)
    assert err.value.column == "recommended_split" and err.value.row == 0


def test_participant_level_labels_get_both_classes_on_both_sides():
    ds = grouped(n_groups=10)
    ds.frame["label"] = ds.frame["participant_id"].str[-1].astype(int) % 2     # a diagnosis: one label per person
    methods = set()
    for seed in range(8):
        train, test = patient_split(ds, test_size=0.2, seed=seed)
        assert set(train.y) == set(test.y) == {0, 1} and not set(train.groups) & set(test.groups)
        methods.add(train.notes[-1].split()[1])
    assert "StratifiedGroupKFold" in methods                        # the fallback was needed for some seed


def test_one_class_side_is_an_error():
    ds = grouped(recommended=["train"] * 29 + ["test"])
    ds.frame.loc[ds.frame["participant_id"] == "p29", "label"] = 1
    with pytest.raises(DataError, match="test side of the split has only class 1"):
        patient_split(ds)
    with pytest.raises(ConfigError):
        patient_split(ds, test_size=1.5)


def test_stratified_row_split_without_groups(heart):
    train, test = patient_split(heart, test_size=0.2, seed=0)
    assert len(test) == 150 and not train.frame.index.intersection(test.frame.index).size
    assert abs(train.y.mean() - test.y.mean()) < 0.02
    assert patient_split(heart, seed=0)[1].frame.index.equals(test.frame.index)


def test_subsample_fraction_is_stratified(heart):
    sub = subsample_fraction(heart, 0.4, seed=1)
    assert sub.y.value_counts().to_dict() == {0: 156, 1: 142}
    assert sub.frame.index.is_monotonic_increasing
    assert subsample_fraction(heart, 0.4, seed=1).frame.index.equals(sub.frame.index)
    assert len(subsample_fraction(heart, 1.0, seed=0)) == len(heart)
    with pytest.raises(ConfigError):
        subsample_fraction(heart, 0.0)


@pytest.mark.parametrize("scenario, expected_removed", [("A", {1: 178}), ("B", {0: 195}), ("C", {0: 195, 1: 178})])
def test_scarcity_scenarios(heart, scenario, expected_removed):
    reduced, removed = scarcity_scenario(heart, scenario, fraction=0.5, seed=2)
    counts = heart.y.value_counts().to_dict()        # {0: 390, 1: 356}
    assert removed.y.value_counts().to_dict() == expected_removed
    assert reduced.y.value_counts().to_dict() == {c: counts[c] - expected_removed.get(c, 0) for c in counts}
    assert not reduced.frame.index.intersection(removed.frame.index).size
    assert len(reduced) + len(removed) == len(heart)
    again, _ = scarcity_scenario(heart, scenario.lower(), fraction=0.5, seed=2)
    assert again.frame.index.equals(reduced.frame.index)


def test_scenario_c_is_union_of_a_and_b(heart):
    rem = {s: scarcity_scenario(heart, s, seed=5)[1].frame.index for s in "ABC"}
    assert rem["C"].sort_values().equals(rem["A"].union(rem["B"]))
    assert not scarcity_scenario(heart, "A", seed=6)[1].frame.index.equals(rem["A"])
    with pytest.raises(ConfigError, match="available: A"):
        scarcity_scenario(heart, "D")


@pytest.mark.parametrize("scenario", ["A", "B", "C"])
def test_participant_reduction_never_splits_a_participant(scenario):
    ds = grouped(n_groups=40, rows=10, seed=1)
    halved = {"A": {1}, "B": {0}, "C": {0, 1}}[scenario]
    n = ds.y.value_counts()
    reduced, removed = scarcity_scenario(ds, scenario, fraction=0.5, seed=2, unit="participants")
    for c in halved:  # a participant's rows of a halved class are removed all together or not at all
        kept = set(reduced.groups[reduced.y == c])
        gone = set(removed.groups[removed.y == c])
        assert not kept & gone
        assert abs(int((removed.y == c).sum()) - n[c] / 2) <= 10   # about half of the class, whole people
    for c in {0, 1} - halved:
        assert int((reduced.y == c).sum()) == n[c]                # the other class keeps every row
    again, _ = scarcity_scenario(ds, scenario, fraction=0.5, seed=2, unit="participants")
    assert again.frame.index.equals(reduced.frame.index)


def test_participant_subsample_keeps_whole_participants():
    ds = grouped(n_groups=40, rows=6)
    sub = subsample_fraction(ds, 0.25, seed=0, unit="participants")
    assert sub.groups.nunique() == 10 and len(sub) == 60
    with pytest.raises(ConfigError, match="group column"):
        subsample_fraction(Dataset("x", Schema("x", [FeatureSpec("x")]), ds.frame.drop(columns="participant_id")),
                           0.5, unit="participants")
