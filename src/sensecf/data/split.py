"""Patient-level train/test split, stratified subsampling (Fig. 1) and label-scarcity scenarios A/B/C."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

from ..errors import ConfigError, DataError
from .dataset import Dataset

RECOMMENDED = "recommended_split"
SPLIT_LEVELS = ("train", "val", "test")
SCENARIOS = {"A": (1,), "B": (0,), "C": (0, 1)}
SCENARIO_TEXT = {"A": "class 1 reduced", "B": "class 0 reduced", "C": "both classes reduced"}


def _check_side(ds: Dataset, side: str, hint: str) -> None:
    counts = ds.y.value_counts()
    if len(counts) < 2:
        have = "no rows" if counts.empty else f"only class {counts.index[0]} ({counts.iloc[0]} rows)"
        raise DataError(f"the {side} side of the split has {have}; {hint}", file=ds.name)


def patient_split(ds: Dataset, test_size: float = 0.2, seed: int = 0,
                  use_recommended: bool = True) -> tuple[Dataset, Dataset]:
    """Split into (train, test) so no participant is on both sides.

    With a `recommended_split` column (and use_recommended) it is honoured: train+val -> train, test -> test.
    Otherwise rows are split by group with GroupShuffleSplit (test_size = share of groups) when the schema
    names a group column — when that leaves a side with a single class (labels that follow the participant, e.g.
    a diagnosis), by StratifiedGroupKFold's first fold instead — else by a stratified row split (test_size =
    share of rows). Raises DataError when a participant lands on both sides or a side holds a single class.
    """
    if not 0 < test_size < 1:
        raise ConfigError(f"test_size must lie strictly between 0 and 1, got {test_size}")
    frame, groups = ds.frame, ds.groups
    recommended = use_recommended and RECOMMENDED in frame.columns
    if recommended:
        rec = frame[RECOMMENDED].astype(str).str.strip().str.lower()
        bad = rec.index[~rec.isin(SPLIT_LEVELS)]
        if len(bad):
            raise DataError(f"{RECOMMENDED} value {frame[RECOMMENDED][bad[0]]!r} is not one of {SPLIT_LEVELS}",
                            file=ds.name, row=bad[0], column=RECOMMENDED)
        test_mask = (rec == "test").to_numpy()
        how, hint = f"{RECOMMENDED} column (train+val -> train, test -> test)", "split with use_recommended=False"
    elif groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        _, test_pos = next(splitter.split(frame, groups=groups))
        test_mask = np.zeros(len(frame), dtype=bool)
        test_mask[test_pos] = True
        how = f"GroupShuffleSplit by {ds.schema.group}, {test_size:.0%} of groups to test, seed {seed}"
        y = ds.y.to_numpy()
        if min(len(set(y[test_mask])), len(set(y[~test_mask]))) < 2 <= len(set(y)):
            folds = StratifiedGroupKFold(n_splits=max(2, round(1 / test_size)), shuffle=True, random_state=seed)
            _, test_pos = next(folds.split(frame, y, groups))
            test_mask = np.isin(np.arange(len(frame)), test_pos)
            how = (f"StratifiedGroupKFold by {ds.schema.group} (a random group split left a side with one class), "
                   f"first of {folds.n_splits} folds to test, seed {seed}")
        hint = "try another seed or a larger test_size"
    else:
        y = ds.y
        if y.value_counts().min() < 2:
            raise DataError("a stratified split needs at least 2 rows of each class", file=ds.name)
        _, test_idx = train_test_split(frame.index, test_size=test_size, stratify=y, random_state=seed)
        test_mask = frame.index.isin(test_idx)
        how = f"stratified row split, {test_size:.0%} to test, seed {seed}"
        hint = "the dataset has too few rows of one class"
    train = ds.subset(frame.index[~test_mask], f"{ds.name}-train")
    test = ds.subset(frame.index[test_mask], f"{ds.name}-test")
    if groups is not None:
        shared = set(train.groups) & set(test.groups)
        if shared:
            raise DataError(f"{len(shared)} participant(s) appear in both train and test (e.g. "
                            f"{sorted(map(str, shared))[0]}) under the {how}", file=ds.name,
                            participant=sorted(map(str, shared))[0], column=RECOMMENDED if recommended else None)
    for side, part in (("train", train), ("test", test)):
        _check_side(part, side, hint)
        part.notes.append(f"split: {how}; train {len(train)} rows, test {len(test)} rows")
    return train, test


REDUCTION_UNITS = ("auto", "participants", "rows")


def reduction_unit(ds: Dataset, unit: str = "auto") -> str:
    """The unit data are reduced by: "participants" (default for data with a group column) or "rows"."""
    if unit not in REDUCTION_UNITS:
        raise ConfigError(f"reduction unit must be one of {', '.join(REDUCTION_UNITS)}, got {unit!r}")
    if unit == "auto":
        return "participants" if ds.groups is not None else "rows"
    if unit == "participants" and ds.groups is None:
        raise ConfigError(f"reduction by participants needs a group column; the schema of {ds.name!r} names none")
    return unit


def _per_class_sample(frame: pd.DataFrame, label: str, counts: dict[int, int], seed: int) -> pd.Index:
    """Row labels of `counts[c]` seeded random rows of each class c, in the frame's row order."""
    chosen = [frame[frame[label] == c].sample(n=n, random_state=seed).index for c, n in counts.items()]
    return frame.index[frame.index.isin(np.concatenate(chosen))]


def _participant_sample(frame: pd.DataFrame, label: str, groups: pd.Series, counts: dict[int, int],
                        seed: int) -> pd.Index:
    """Row labels of whole participants' class-c rows, participants drawn in a seeded order until the count is
    closest to `counts[c]` (a participant's rows of a class are never split)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c, n in counts.items():
        rows = frame.index[frame[label] == c]
        per = groups.loc[rows].astype(str)
        sizes = per.value_counts()
        order = sizes.index[rng.permutation(len(sizes))]
        total, picked = 0, []
        for pid in order:
            if abs(total + sizes[pid] - n) > abs(total - n):
                if total >= n:
                    break
                continue
            picked.append(pid)
            total += sizes[pid]
        chosen.append(rows[per.isin(picked).to_numpy()])
    return frame.index[frame.index.isin(np.concatenate(chosen))] if chosen else frame.index[:0]


def subsample_fraction(ds: Dataset, fraction: float, seed: int = 0, unit: str = "rows") -> Dataset:
    """A seeded share of the data, row order kept: by "rows" (stratified; each class keeps round(fraction * n),
    at least 1) or by "participants" (round(fraction * participants) whole participants, at least 2)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must lie in (0, 1], got {fraction}")
    unit = reduction_unit(ds, unit)
    if unit == "participants":
        groups = ds.groups.astype(str)
        people = np.sort(groups.unique())
        keep = np.random.default_rng(seed).permutation(people)[:max(2, round(fraction * len(people)))]
        idx = ds.frame.index[groups.isin(keep).to_numpy()]
        return ds.subset(idx, f"{ds.name}-{fraction:.0%}-participants")
    counts = ds.y.value_counts().sort_index()
    keep = {int(c): max(1, round(fraction * n)) for c, n in counts.items()}
    idx = _per_class_sample(ds.frame, ds.schema.label, keep, seed)
    return ds.subset(idx, f"{ds.name}-{fraction:.0%}")


def scarcity_scenario(train: Dataset, scenario: str, fraction: float = 0.5, seed: int = 0,
                      unit: str = "rows") -> tuple[Dataset, Dataset]:
    """Simulate label scarcity on the training set; returns (reduced, removed).

    A: about `fraction` of the class-1 rows removed; B: the same for class 0; C: both. By "rows": seeded random
    rows, exactly round(fraction * n) of a class, the same seed for each class, so C removes exactly the union of
    what A and B remove. By "participants": the class's rows of whole participants (drawn in a seeded order)
    until the removed count is closest to fraction * n, so no participant's rows of that class are split —
    fewer labelled people, as scarcity happens in studies.
    """
    key = str(scenario).strip().upper()
    if key not in SCENARIOS:
        raise ConfigError(f"unknown scarcity scenario {scenario!r}; available: "
                          + ", ".join(f"{k} ({v})" for k, v in SCENARIO_TEXT.items()))
    if not 0 < fraction < 1:
        raise ConfigError(f"the removed fraction must lie strictly between 0 and 1, got {fraction}")
    unit = reduction_unit(train, unit)
    counts = train.y.value_counts()
    remove = {c: round(fraction * int(counts.get(c, 0))) for c in SCENARIOS[key]}
    if unit == "participants":
        idx = _participant_sample(train.frame, train.schema.label, train.groups, remove, seed)
    else:
        idx = _per_class_sample(train.frame, train.schema.label, remove, seed)
    removed = train.subset(idx, f"{train.name}-removed-{key}")
    for c in SCENARIOS[key]:
        if int(counts.get(c, 0)) - int((removed.y == c).sum()) < 1:
            raise DataError(f"scenario {key} would leave no row of class {c} ({int(counts.get(c, 0))} rows)",
                            file=train.name, column=train.schema.label)
    reduced = train.subset(train.frame.index.difference(idx, sort=False), f"{train.name}-scenario-{key}")
    note = (f"scarcity scenario {key} ({SCENARIO_TEXT[key]}, by {unit}): removed "
            + ", ".join(f"{int((removed.y == c).sum())} of class {c}" for c in SCENARIOS[key])
            + f" ({fraction:.0%}, seed {seed})")
    reduced.notes.append(note)
    removed.notes.append(note)
    return reduced, removed
