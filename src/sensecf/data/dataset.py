"""The in-memory dataset every later layer consumes: a schema plus a validated table."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..schema import Schema


@dataclass
class Dataset:
    """A validated feature table.

    `frame` holds the schema's feature columns, the label column, and optionally the group column
    (e.g. participant_id) and other metadata columns (window_start, window_end, recommended_split, ...).
    `notes` carries provenance the user must see (e.g. "Medication derived from study_group").
    """

    name: str
    schema: Schema
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def X(self) -> pd.DataFrame:
        """Feature columns only, in schema order."""
        return self.frame[self.schema.feature_names]

    @property
    def y(self) -> pd.Series:
        return self.frame[self.schema.label].astype(int)

    @property
    def groups(self) -> pd.Series | None:
        g = self.schema.group
        return self.frame[g] if g and g in self.frame.columns else None

    def subset(self, index, name: str | None = None) -> "Dataset":
        """A new Dataset on the given row labels (same schema and notes)."""
        return Dataset(name or self.name, self.schema, self.frame.loc[index].copy(), list(self.notes))

    def __len__(self) -> int:
        return len(self.frame)
