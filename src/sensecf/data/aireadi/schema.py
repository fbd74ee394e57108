"""The paper's AI-READI stress task as a schema: 12 features, label 1 = high stress (desired: moderate)."""

from __future__ import annotations

from ...schema import FeatureSpec, Schema
from ..windows import HYPER_RULE_TEXT

SUBGROUPS = ["healthy", "prediabetes", "oral_t2dm", "insulin_t2dm"]
MEDICATIONS = ["none", "oral", "insulin"]
GENDERS = ["female", "male", "unknown"]


def aireadi_stress_schema(hyper_rule: str = "overlap") -> Schema:
    """The paper's 12 features for the AI-READI stress task (label 1 = high stress; desired class 0).

    `hyper_rule` only words hyper_events' description: events that overlap the window (default) or start in it.

    As in the paper, only mean steps carries a direction, goal-relative (`better: higher`): towards moderate
    stress steps may only rise, towards high stress (augmentation, Table III's other class) only fall. Actionability
    follows what a person can change: steps high; glucose, time in range and hyperglycaemic events medium (diet,
    medication, activity); sleep-stage shares low; demographics none.
    """
    F = FeatureSpec
    sleep = dict(kind="continuous", unit="%", bounds=(0, 100), precision=1, actionability="low")
    return Schema(
        name="aireadi-stress",
        description="AI-READI wearable windows: 2-h sensor summaries, last night's sleep stages, demographics; "
                    "label = day's mean Garmin stress > 75.",
        label="label",
        label_names={0: "moderate stress", 1: "high stress"},
        group="participant_id",
        desired_class=0,
        features=[
            F("awake_pct", description="share of last night's sleep time spent awake", display="Awake %", **sleep),
            F("light_pct", description="share of last night's sleep time in light sleep", display="Light sleep %",
              **sleep),
            F("deep_pct", description="share of last night's sleep time in deep sleep", display="Deep sleep %",
              **sleep),
            F("rem_pct", description="share of last night's sleep time in REM sleep", display="REM sleep %", **sleep),
            F("mean_steps", "continuous", "steps/min", "mean steps per minute over the 2-hour window",
              better="higher", bounds=(0, 200), precision=1, display="Mean steps", actionability="high"),
            F("mean_glucose", "continuous", "mg/dL", "mean CGM glucose over the 2-hour window (readings \"Low\" = 39, "
              "\"High\" = 401 mg/dL)",
              bounds=(39, 401), precision=1, display="Mean glucose", actionability="medium"),
            F("hyper_events", "integer", "events", "hyperglycaemic events (>=15 min above 180 mg/dL) "
              f"{HYPER_RULE_TEXT[hyper_rule]}", bounds=(0, 8), precision=0, display="Hyperglycemic events",
              actionability="medium"),
            F("time_in_range_pct", "continuous", "%", "share of CGM readings within 70-180 mg/dL in the window",
              bounds=(0, 100), precision=1, display="Time in range %", actionability="medium"),
            F("age", "integer", "years", "age at the study visit", immutable=True, bounds=(18, 100), precision=0,
              display="Age"),
            F("gender", "categorical", "", "gender (controlled-access in AI-READI; 'unknown' when not provided)",
              immutable=True, levels=GENDERS, display="Gender"),
            F("medication", "categorical", "", "diabetes medication", immutable=True, levels=MEDICATIONS,
              display="Medication"),
            F("subgroup", "categorical", "", "study group: healthy, prediabetes, T2DM on oral medication, "
              "insulin-treated T2DM", immutable=True, levels=SUBGROUPS, display="Patient subgroup"),
        ],
    )
