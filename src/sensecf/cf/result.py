"""CFResult: one counterfactual per factual row with its status, reason, probability, timing and extras."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ConfigError

VALID, INVALID, FAILED = "valid", "invalid", "failed"
STATUSES = (VALID, INVALID, FAILED)


@dataclass
class CFResult:
    """One counterfactual per factual (index aligned with the factuals).

    counterfactuals: schema feature columns; rows of failed generations are all-NaN.
    status: "valid" (verified: reaches the target and breaks no constraint) | "invalid" (a CF that fails the
    verification; `reason` says why) | "failed" (no CF; `reason` says why).
    target_proba: predicted probability of the target class for the CF (NaN when failed).
    seconds: wall time spent on the row.
    extra: optional per-row method-specific columns (e.g. LLM outcome, calibration calls).
    """

    method: str
    factuals: pd.DataFrame
    target: pd.Series
    counterfactuals: pd.DataFrame
    status: pd.Series
    reason: pd.Series
    target_proba: pd.Series
    seconds: pd.Series
    extra: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def valid_mask(self) -> pd.Series:
        return self.status == VALID

    @classmethod
    def concat(cls, method: str, parts: list["CFResult"]) -> "CFResult":
        """One result from the results of consecutive chunks of factuals."""
        cat = lambda attr: pd.concat([getattr(p, attr) for p in parts])  # noqa: E731
        extra = [p.extra for p in parts if not p.extra.empty]
        return cls(method, cat("factuals"), cat("target"), cat("counterfactuals"), cat("status"), cat("reason"),
                   cat("target_proba"), cat("seconds"), pd.concat(extra) if extra else pd.DataFrame())

    def subset(self, mask) -> "CFResult":
        """The rows selected by a boolean mask aligned with the index."""
        m = np.asarray(mask, dtype=bool)
        return CFResult(self.method, self.factuals[m], self.target[m], self.counterfactuals[m], self.status[m],
                        self.reason[m], self.target_proba[m], self.seconds[m],
                        self.extra[m] if not self.extra.empty else self.extra)

    def summary(self) -> dict:
        counts = self.status.value_counts().to_dict()
        return {"method": self.method, "n": int(len(self.status)),
                **{s: int(counts.get(s, 0)) for s in STATUSES},
                "reasons": self.reason[self.reason != ""].value_counts().head(10).to_dict()}

    def to_frame(self) -> pd.DataFrame:
        """One table: CF feature columns + target/status/reason/target_proba/seconds (+ extra)."""
        out = self.counterfactuals.copy()
        out["target"] = self.target
        out["status"], out["reason"] = self.status, self.reason
        out["target_proba"], out["seconds"] = self.target_proba, self.seconds
        if not self.extra.empty:
            out = out.join(self.extra)
        return out


def as_target_series(target, index: pd.Index) -> pd.Series:
    """Broadcast an int or array target to a Series aligned with the factuals' index."""
    if np.isscalar(target):
        return pd.Series(int(target), index=index, dtype=int)
    arr = np.asarray(target).astype(int)
    if len(arr) != len(index):
        raise ConfigError(f"target has {len(arr)} entries for {len(index)} factuals")
    return pd.Series(arr, index=index, dtype=int)
