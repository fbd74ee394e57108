"""Typed request and response bodies of the what-if API (they make the OpenAPI schema at /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Value = float | str  # numeric features are numbers, categorical ones their level
PROBA = "predicted probability of class 1 (label_names['1'])"


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class ScoreRequest(Request):
    id: str = Field(description="test row id (GET /patients)")
    features: dict[str, Any] = Field(default_factory=dict, description="feature values to change; the others "
                                     "keep the row's values. Fixed features cannot change.")


class CFRequest(Request):
    id: str
    method: str = Field(description="a counterfactual method (GET /info: methods)")
    options: dict[str, Any] = Field(default_factory=dict, description="generator options, e.g. cfnow_time_limit, "
                                    "backend, k (as `sensecf benchmark --option`)")


class InterventionRequest(ScoreRequest):
    method: str | None = Field(None, description="where the values come from (shown in the export)")
    llm: bool = Field(False, description="also ask the LLM backend for a narrative, kept only when every number "
                      "in it matches the verified view")
    options: dict[str, Any] = Field(default_factory=dict, description="LLM backend options (backend, base_url)")


class Error(BaseModel):
    detail: str
    field: str | None = None


class FeatureInfo(BaseModel):
    name: str
    label: str
    unit: str
    kind: str
    description: str
    immutable: bool
    direction: str
    levels: list[str] | None
    clinical_bounds: list[float | None] | None
    training_range: list[Value]
    precision: int
    step: float | None = Field(description="slider step: 1 for integers, 10^-precision for continuous features")
    actionability: str | None


class Info(BaseModel):
    source: str
    classifier: str
    label_names: dict[str, str]
    n_patients: int
    features: list[FeatureInfo]
    methods: list[str]
    run_methods: list[str]


class PatientSummary(BaseModel):
    id: str
    predicted_class: int
    probability: float = Field(description=PROBA)
    has_counterfactuals: bool
    group: str | None = Field(None, description="participant id, when the data has one")


class Counterfactual(BaseModel):
    method: str
    source: str = Field(description="run (cfs/<method>.csv) or new (asked for in this session)")
    status: str = Field(description="the method's own verdict: valid | invalid | failed")
    reason: str
    target_class: int
    seconds: float | None
    features: dict[str, Value] | None = Field(description="None when the method found no counterfactual")
    changed: list[str]
    probability: float | None = Field(description=PROBA + ", re-scored now")
    predicted_class: int | None
    violations: list[str] = Field(description="fixed features, bounds or directions the CF breaks")
    implausible: list[str] = Field(description="features outside the training data's range or levels")
    metrics: dict[str, float | None] = Field(description="the benchmark's metrics of this one CF (validity, "
                                             "distance, sparsity, plausibility, realism, ...)")
    actionability: dict[str, str] = Field(description="actionability of each changed feature (when the schema "
                                          "has it)")
    actionable_share: float | None = Field(description="share of changed features of high or medium actionability")


class Patient(PatientSummary):
    target_class: int = Field(description="the class a counterfactual aims for")
    features: dict[str, Value]
    fixed: list[str]
    bounds: dict[str, list[float]] = Field(description="slider range per mutable numeric feature: clinical bounds "
                                           "∩ training range, cut at the row's value by the allowed direction")
    directions: dict[str, str]
    implausible: list[str]
    counterfactuals: list[Counterfactual]


class Score(BaseModel):
    probability: float = Field(description=PROBA)
    predicted_class: int
    implausible: list[str] = Field(description="features outside the training data's range or levels")


class Intervention(BaseModel):
    id: str
    method: str
    source: str
    classifier: str
    created: str
    view: dict[str, Any] = Field(description="the Table II view: factual, counterfactual, changes, probabilities")
    narrative: str = Field(description="templated from the view's numbers")
    llm_narrative: str | None = Field(None, description="only on request; null when its numbers did not match")
