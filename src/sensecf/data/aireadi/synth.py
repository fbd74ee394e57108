"""Write a synthetic cohort in the exact raw AI-READI layout (v1/v2/v3), for tests, demos and CI.

The physiology is simulated, not copied: glucose = study-group baseline + meal responses + AR(1) noise;
steps follow a waking-hours circadian profile; sleep stages come in ~90-min cycles with night-to-night
variation; each day's mean Garmin stress is a latent mix of last night's sleep, the day's glucose and
activity, a participant effect and daily noise, so a classifier can learn a real but imperfect signal. People
differ: each participant's stress responses to sleep, glucose and activity are drawn around a population mean
(STRESS_RESPONSE), on top of person-specific baselines, so generalising to new people takes many people.
Heart rate, SpO2, respiration and calories are not simulated (their manifest cells are "None").
"""

from __future__ import annotations

import orjson
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track
from scipy.signal import lfilter

from ...errors import ConfigError
from . import DEFAULT_DAYS, DEFAULT_PARTICIPANTS
from .reader import MODALITIES, _console


VERSIONS = ("v1", "v2", "v3")
GROUPS = ["healthy", "pre_diabetes_lifestyle_controlled",
          "oral_medication_and_or_non_insulin_injectable_medication_controlled", "insulin_dependent"]
GROUP_SHARE = [0.34, 0.26, 0.27, 0.13]
SITES = [("UW", 1000, "pst", "America/Los_Angeles"), ("UCSD", 4000, "pst", "America/Los_Angeles"),
         ("UAB", 7000, "cst", "America/Chicago")]
DATATYPES = ["cardiac_ecg", "clinical_data", "environment", "retinal_flio", "retinal_oct", "retinal_octa",
             "retinal_photography", "wearable_activity_monitor", "wearable_blood_glucose"]
# per study group (healthy, prediabetes, oral T2DM, insulin T2DM)
BASE_GLUCOSE = np.array([98.0, 112.0, 145.0, 165.0])
BASE_GLUCOSE_SD = np.array([6.0, 8.0, 15.0, 20.0])
MEAL_AMPLITUDE = np.array([30.0, 45.0, 75.0, 100.0])
MEAL_PEAK_MIN = np.array([45.0, 55.0, 70.0, 75.0])
DAY_GLUCOSE_SD = np.array([5.0, 7.0, 14.0, 20.0])
NOISE_SD = np.array([6.0, 8.0, 12.0, 18.0])
DAILY_STEPS = np.array([7500.0, 6500.0, 5500.0, 4800.0])
# latent daily stress z = r_sleep * sleep + r_glucose * glucose - r_activity * activity + participant + day noise,
# mean daily stress = offset + scale * z. Each person's responses r_* are drawn around a population mean (between-
# person heterogeneity: some barely react, a few react the other way), so a classifier must see many people to
# learn the population relationship.
# Calibrated (benchmarks/bench_synthetic.py) only to method-independent published figures: the paper's NN baseline
# (accuracy 71.8 %, F1 0.68, AUC 0.78) and that less labelled data costs F1 — never to counterfactual or
# augmentation results.
STRESS_RESPONSE = dict(sleep=(1.3, 0.65), glucose=(0.65, 0.38), activity=(0.65, 0.38))  # (mean, sd across people)
STRESS_NOISE = dict(participant=1.0, day=0.5)
STRESS_OFFSET, STRESS_SCALE = 73.5, 8.0
GARMIN_MANIFEST_COLUMNS = [
    "wrist_worn_on", "dominant_hand", "heartrate_filepath", "heartrate_record_count", "average_heartrate_bpm",
    "oxygen_saturation_filepath", "oxygen_saturation_record_count", "average_oxygen_saturation_pct",
    "stress_level_filepath", "stress_level_record_count", "average_stress_level", "sleep_filepath",
    "sleep_record_count", "average_sleep_hours", "respiratory_rate_filepath", "respiratory_rate_record_count",
    "average_respiratory_rate_bpm", "physical_activity_filepath", "physical_activity_num_days",
    "average_daily_activity", "active_calories_filepath", "active_calories_record_count",
    "average_active_calories_kcal", "sensor_sampling_duration_days", "manufacturer", "manufacturer_model_name"]


def _utc_strings(index: pd.DatetimeIndex, plain: np.ndarray | None = None) -> list[str]:
    """'YYYY-MM-DDTHH:MM:SSZ' strings; rows flagged in `plain` use the v1 form 'YYYY-MM-DD HH:MM:SS'."""
    s = np.datetime_as_string(index.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]"),
                              unit="s")
    iso = np.char.add(s, "Z")
    if plain is not None and plain.any():
        iso = np.where(plain, np.char.replace(s, "T", " "), iso)
    return iso.tolist()


def _relpath(pid: str, modality: str) -> str:
    datatype, mod, device, suffix, _ = MODALITIES[modality]
    return f"{datatype}/{mod}/{device}/{pid}/{pid}_{suffix}.json"


def _write_json(root: Path, rel: str, doc: dict) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))


def _sleep_epochs(bed: pd.Timestamp, minutes: float, pct: dict[str, float]) -> tuple[list[str], pd.DatetimeIndex,
                                                                                       pd.DatetimeIndex]:
    """~90-min cycles light -> deep -> light -> rem -> awake; deep front-loaded, REM back-loaded.

    Returns (stages, epoch starts, epoch ends) with whole-minute boundaries.
    """
    n = max(3, int(round(minutes / 90)))
    k = np.arange(n)
    deep = minutes * pct["deep"] / 100 * (n + 1 - k) / (n + 1 - k).sum()
    rem = minutes * pct["rem"] / 100 * (k + 2) / (k + 2).sum()
    awake = np.full(n, minutes * pct["awake"] / 100 / n)
    light = minutes / n - deep - rem - awake
    durs = np.column_stack([light / 2, deep, light / 2, rem, awake]).ravel()
    stages = np.tile(["light", "deep", "light", "rem", "awake"], n)
    bounds = bed + pd.to_timedelta(np.round(np.r_[0.0, np.cumsum(durs)]), unit="min")
    keep = bounds[1:] > bounds[:-1]
    return stages[keep].tolist(), bounds[:-1][keep], bounds[1:][keep]


def _participant(pid: str, tzname: str, tzcode: str, gi: int, rng: np.random.Generator, days: int,
                 version: str, edge: dict) -> tuple[dict[str, dict], dict]:
    """Simulate one participant; returns ({modality: json doc}, manifest statistics)."""
    d0 = pd.Timestamp("2023-08-01") + pd.Timedelta(days=int(rng.integers(0, 150)))
    day0 = pd.Timestamp(d0, tz=tzname)
    end = pd.Timestamp(d0 + pd.Timedelta(days=days), tz=tzname)
    local_days = pd.date_range(d0, periods=days, freq="D")

    # participant traits
    base_g = BASE_GLUCOSE[gi] + rng.normal(0, BASE_GLUCOSE_SD[gi])
    meal_amp = MEAL_AMPLITUDE[gi] * rng.lognormal(0, 0.2)
    steps_p = DAILY_STEPS[gi] * rng.lognormal(0, 0.35)
    sleep_base = {"awake": rng.normal(10, 2.0), "deep": rng.normal(15, 2.5), "rem": rng.normal(21, 2.0)}
    bed_offset, sleep_hours = rng.normal(0, 0.6), rng.normal(7.2, 0.5)
    stress_p = rng.normal()

    # nights (night i precedes local day i) and daily latent factors
    nights = []
    for i in range(days):
        pct = {s: float(np.clip(sleep_base[s] + rng.normal(0, sd), lo, hi))
               for s, sd, lo, hi in (("awake", 2.5, 3, 20), ("deep", 3.0, 6, 25), ("rem", 2.5, 12, 30))}
        pct["light"] = 100 - sum(pct.values())
        bed = (local_days[i] + pd.Timedelta(hours=bed_offset + rng.normal(0, 0.5) - 1)).round("min")
        bed = bed.tz_localize(tzname, ambiguous=True, nonexistent="shift_forward")
        dur = 60 * float(np.clip(sleep_hours + rng.normal(0, 0.6), 4.5, 9.5))
        nights.append((bed, dur, pct))
    day_g = rng.normal(0, DAY_GLUCOSE_SD[gi], days)
    day_act = rng.lognormal(0, 0.3, days)
    sleep_score = np.array([((p["awake"] - 10) / 2.5 - (p["deep"] - 15) / 3 - (p["rem"] - 21) / 2.5) / np.sqrt(3)
                            for _, _, p in nights])
    resp = np.random.default_rng(rng.integers(2 ** 62))  # the person's responses, from their own stream
    r = {k: resp.normal(m, sd) for k, (m, sd) in STRESS_RESPONSE.items()}
    activity = (np.log(day_act) / 0.3 + np.log(steps_p / DAILY_STEPS[gi]) / 0.35) / np.sqrt(2)
    z = (r["sleep"] * sleep_score + r["glucose"] * (day_g / DAY_GLUCOSE_SD[gi] + 0.4 * (gi - 1.5))
         - r["activity"] * activity
         + STRESS_NOISE["participant"] * stress_p + STRESS_NOISE["day"] * rng.normal(0, 1, days))
    day_stress = STRESS_OFFSET + STRESS_SCALE * z

    def asleep(idx: pd.DatetimeIndex) -> np.ndarray:
        return np.logical_or.reduce([(idx >= b) & (idx < b + pd.Timedelta(minutes=d)) for b, d, _ in nights])

    # CGM every 5 min
    t = pd.date_range(day0, end, freq="5min", inclusive="left")
    day_i = np.searchsorted(local_days.to_numpy(), t.tz_localize(None).normalize().to_numpy())
    day_i = np.clip(day_i, 0, days - 1)
    minutes = ((t - day0).total_seconds() / 60).to_numpy()
    g = base_g + day_g[day_i] + lfilter([1.0], [1.0, -0.9], rng.normal(0, NOISE_SD[gi] * np.sqrt(1 - 0.81), len(t)))
    tau_p = MEAL_PEAK_MIN[gi]
    for i in range(days):
        for hour, sd in ((7.5, 0.5), (12.5, 0.7), (18.5, 0.8)):
            meal = i * 1440 + 60 * (hour + rng.normal(0, sd))
            tau = np.clip(minutes - meal, 0, None)
            g += meal_amp * rng.lognormal(0, 0.3) * (tau / tau_p) * np.exp(1 - tau / tau_p)
    g = np.round(g).astype(int)
    gval: list = np.clip(g, 40, 400).tolist()
    for j in np.flatnonzero(g < 40):
        gval[j] = "Low"
    for j in np.flatnonzero(g > 400):
        gval[j] = "High"
    if edge.get("low_high"):
        for j in range(36, 39):
            gval[j] = "Low"
        for j in range(228, 230):
            gval[j] = "High"
    times = _utc_strings(t)
    event = ["EGV"] * len(t)
    if edge.get("calibration"):
        extra = sorted(rng.choice(len(t), 2, replace=False))
        for j in reversed(extra):
            times.insert(j, times[j])
            gval.insert(j, int(rng.integers(60, 300)))
            event.insert(j, "Calibration")
    if edge.get("duplicates"):
        for j in sorted(rng.choice(len(t) - 1, 2, replace=False), reverse=True):
            times.insert(j, times[j])
            gval.insert(j, gval[j])
            event.insert(j, "EGV")
    cgm = [{"effective_time_frame": {"time_interval": {"start_date_time": ts, "end_date_time": ts}},
            "event_type": ev, "source_device_id": f"SN{pid}000",
            "blood_glucose": {"unit": "mg/dL", "value": v},
            "transmitter_time": {"unit": "long integer", "value": 300 * k}, "transmitter_id": f"TX{pid}"}
           for k, (ts, v, ev) in enumerate(zip(times, gval, event))]

    # steps every 15 min, by interval end
    ta = pd.date_range(day0, end, freq="15min", inclusive="both")
    ends = ta[1:]
    mid = ends - pd.Timedelta(minutes=7.5)
    hour = (mid.hour + mid.minute / 60).to_numpy()
    profile = (0.6 + np.exp(-((hour - 8.5) / 1.2) ** 2) + 1.2 * np.exp(-((hour - 12.5) / 1.0) ** 2)
               + 1.0 * np.exp(-((hour - 18.0) / 1.5) ** 2)) * ~asleep(mid)
    day_a = np.clip(np.searchsorted(local_days.to_numpy(), mid.tz_localize(None).normalize().to_numpy()), 0,
                    days - 1)
    awake_share = profile / np.maximum(pd.Series(profile).groupby(day_a).transform("sum").to_numpy(), 1e-9)
    mu = steps_p * day_act[day_a] * awake_share
    steps = rng.poisson(rng.gamma(1.2, np.maximum(mu, 1e-9) / 1.2))
    svals: list = steps.tolist()
    as_str = rng.random(len(steps)) < 0.25
    blank = rng.random(len(steps)) < 0.01
    plain = rng.random(len(steps)) < (0.3 if edge.get("plain_times") else 0.0)
    names = np.where(steps == 0, "sedentary", np.where(steps > 1400, "running", "walking")).tolist()
    for j in np.flatnonzero(as_str):
        svals[j] = str(svals[j])
    for j in np.flatnonzero(blank):
        svals[j], names[j] = "", ""
    a_str = _utc_strings(ta, np.r_[plain[:1], plain])
    activity = [{"activity_name": n, "base_movement_quantity": {"value": v, "unit": "steps"},
                 "effective_time_frame": {"time_interval": {"start_date_time": a_str[k], "end_date_time":
                                                            a_str[k + 1]}}}
                for k, (n, v) in enumerate(zip(names, svals))]

    # stress every 5 min: day mean + zero-mean diurnal shape + noise; -1 / -2 codes sprinkled
    tst = pd.date_range(day0, end, freq="5min", inclusive="left")
    sday = np.clip(np.searchsorted(local_days.to_numpy(), tst.tz_localize(None).normalize().to_numpy()), 0,
                   days - 1)
    shour = (tst.hour + tst.minute / 60).to_numpy()
    diurnal = 6 * np.sin((shour - 9) / 24 * 2 * np.pi) - 8 * asleep(tst)
    diurnal = diurnal - pd.Series(diurnal).groupby(sday).transform("mean").to_numpy()
    sv = np.clip(np.round(day_stress[sday] + diurnal + rng.normal(0, 8, len(tst))), 0, 100).astype(int)
    code = rng.random(len(tst))
    sv = np.where(code < 0.03, -1, np.where(code < 0.04, -2, sv))
    s_times, s_vals = _utc_strings(tst), sv.tolist()
    if edge.get("duplicates"):
        j = int(rng.integers(0, len(tst) - 1))
        s_times.insert(j, s_times[j])
        s_vals.insert(j, s_vals[j])
    stress = [{"stress": {"value": v, "unit": "stress level"}, "effective_time_frame": {"date_time": ts}}
              for ts, v in zip(s_times, s_vals)]

    # sleep
    frame_key = "effective_time_frame" if version == "v3" else "sleep_stage_time_frame"
    sleep = []
    for bed, dur, pct in nights:
        if version == "v1":
            b, e = _utc_strings(pd.DatetimeIndex([bed, bed + pd.Timedelta(minutes=round(dur))]))
            sleep.append({"sleep_duration": {"value": round(dur / 60, 2), "unit": "h"},
                          "effective_time_frame": {"time_interval": {"start_date_time": b, "end_date_time": e}}})
            continue
        stages, starts, ends = _sleep_epochs(bed, dur, pct)
        sleep += [{"sleep_stage_state": st, frame_key: {"time_interval": {"start_date_time": a,
                                                                         "end_date_time": b}}}
                  for st, a, b in zip(stages, _utc_strings(starts), _utc_strings(ends))]

    def header(kind: str) -> dict:
        h = {"uuid": f"synthetic-{pid}-{kind}", "creation_date_time": "2024-06-01T10:00:00Z"}
        if kind == "cgm":
            h.update(patient_id=f"AIREADI-{pid}", schema_id={"namespace": "omh", "name": "blood-glucose",
                                                            "version": 3.0},
                     modality="sensed", acquistion_rate={"number_of_times": 1,
                                                        "time_window": {"value": 5, "unit": "min"}},
                     external_datasheets={"datasheet_type": "source_device",
                                          "datasheet_reference": "synthetic"})
            if version != "v1":
                h["timezone"] = tzcode
            return h
        h.update(user_id=f"AIREADI-{pid}",
                 schema_id={"namespace": "omh", "name": "sleep-stages", "version": 2.0} if kind == "sleep"
                 else {"namespace": "", "name": "", "version": ""})
        if version == "v3":
            h["timezone"] = tzcode
        return h

    docs = {"cgm": {"header": header("cgm"), "body": cgm if version == "v1" else {"cgm": cgm}},
            "steps": {"header": header("steps"), "body": {"activity": activity}},
            "stress": {"header": header("stress"), "body": {"stress": stress}},
            "sleep": {"header": header("sleep"), "body": {"sleep": sleep}}}
    valid_g = np.clip(g, 40, 400)
    valid_s = sv[sv >= 0]
    stats = {"glucose_level_record_count": len(cgm), "average_glucose_level_mg_dl": round(float(valid_g.mean()), 1),
             "glucose_sensor_sampling_duration_days": days,
             "stress_level_record_count": len(stress), "average_stress_level": round(float(valid_s.mean()), 1),
             "high_stress_day_share": float(np.mean(day_stress > 75)),
             "sleep_record_count": len(sleep),
             "average_sleep_hours": round(float(np.mean([d for _, d, _ in nights])) / 60, 2),
             "physical_activity_num_days": days, "average_daily_activity": round(float(steps.sum()) / days, 1)}
    return docs, stats


SPLIT_PATTERN = ("train",) * 7 + ("val", "test", "test")  # 70 / 10 / 20 %, the paper's 80/20 patient split


def recommended_splits(groups: np.ndarray, high_stress_share: np.ndarray, draw: np.ndarray) -> list[str]:
    """The `recommended_split` of each participant, stratified (like a real release's) by study group and by how
    stressed the person is, so the held-out people resemble the training people: participants sorted by (group,
    share of high-stress days) fill consecutive blocks of 10, each split 7 train / 1 val / 2 test in the order of
    a seeded draw."""
    order = np.lexsort((draw, high_stress_share, groups))
    out = np.empty(len(order), dtype=object)
    for start in range(0, len(order), len(SPLIT_PATTERN)):
        block = order[start:start + len(SPLIT_PATTERN)]
        ranks = np.argsort(np.argsort(draw[block]))
        out[block] = [SPLIT_PATTERN[r] for r in ranks]
    return out.tolist()


def write_synthetic_cohort(out_dir: str | Path, n_participants: int = DEFAULT_PARTICIPANTS, days: int = DEFAULT_DAYS,
                           seed: int = 0, version: str = "v2", progress: bool = True) -> Path:
    """Write a seeded synthetic cohort in the raw AI-READI `version` layout under out_dir; returns out_dir.

    Edge cases included on purpose: "Low"/"High" glucose, a non-EGV calibration row, stress -1/-2, "" and
    numeric-string step values, duplicate timestamps, activity timestamps without T/Z, and (with >= 3
    participants) one participant without CGM whose manifest cell is "None".
    """
    if version not in VERSIONS:
        raise ConfigError(f"unknown AI-READI version {version!r}; choose one of {', '.join(VERSIONS)}")
    if n_participants < 1 or days < 1:
        raise ConfigError(f"need at least 1 participant and 1 day (got {n_participants}, {days})")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    site_idx = rng.choice(len(SITES), n_participants, p=[0.4, 0.3, 0.3])
    if n_participants >= 3:
        site_idx[:3] = [0, 1, 2]
    groups = rng.choice(len(GROUPS), n_participants, p=GROUP_SHARE)
    if n_participants >= 4:
        groups[:4] = [0, 1, 2, 3]
    pids = []
    for s in range(len(SITES)):
        k = int((site_idx == s).sum())
        pids.append(iter(SITES[s][1] + np.sort(rng.choice(np.arange(1, 1000), k, replace=False))))
    pid_list = [f"{next(pids[s]):04d}" for s in site_idx]
    ages = np.clip(np.round(rng.normal(57 + 3 * groups, 9)), 40, 85).astype(int)
    split_draw = rng.random(n_participants)  # orders the recommended split (assigned once the stress is known)
    no_cgm = n_participants - 1 if n_participants >= 3 else -1
    children = np.random.SeedSequence(seed).spawn(n_participants)

    id_col = "person_id" if version == "v3" else "participant_id"
    part_rows, cgm_rows, garmin_rows, shares = [], [], [], []
    idx = range(n_participants)
    for i in (track(idx, description="writing synthetic AI-READI cohort", console=_console) if progress else idx):
        pid, (site, _, tzcode, tzname) = pid_list[i], SITES[site_idx[i]]
        edge = {"low_high": i == 0, "calibration": i == 1, "duplicates": i % 5 == 0, "plain_times": i % 7 == 3}
        docs, stats = _participant(pid, tzname, tzcode, int(groups[i]), np.random.default_rng(children[i]),
                                   days, version, edge)
        shares.append(stats.pop("high_stress_day_share"))
        for m, doc in docs.items():
            if not (m == "cgm" and i == no_cgm):
                _write_json(root, _relpath(pid, m), doc)
        row = {id_col: pid, "clinical_site": site, "study_group": GROUPS[groups[i]], "age": int(ages[i]),
               "study_visit_date": "2023-07-15"}
        row.update({d: "FALSE" for d in DATATYPES})
        row["wearable_activity_monitor"] = "TRUE"
        row["wearable_blood_glucose"] = "FALSE" if i == no_cgm else "TRUE"
        part_rows.append(row)
        has_cgm = i != no_cgm
        cgm_rows.append({id_col: pid, "glucose_filepath": "/" + _relpath(pid, "cgm") if has_cgm else "None",
                         "glucose_level_record_count": stats["glucose_level_record_count"] if has_cgm else 0,
                         "average_glucose_level_mg_dl": stats["average_glucose_level_mg_dl"] if has_cgm else "",
                         "glucose_sensor_sampling_duration_days": days if has_cgm else 0,
                         "glucose_sensor_id": f"SN{pid}000" if has_cgm else "",
                         "manufacturer": "Dexcom", "manufacturer_model_name": "G6"})
        g = dict.fromkeys(GARMIN_MANIFEST_COLUMNS, "")
        g.update({k: v for k, v in stats.items() if k in g})
        g.update(wrist_worn_on="left", dominant_hand="right", heartrate_filepath="None",
                 oxygen_saturation_filepath="None", respiratory_rate_filepath="None",
                 active_calories_filepath="None", stress_level_filepath="/" + _relpath(pid, "stress"),
                 sleep_filepath="/" + _relpath(pid, "sleep"),
                 physical_activity_filepath="/" + _relpath(pid, "steps"), sensor_sampling_duration_days=days,
                 manufacturer="Garmin", manufacturer_model_name="Vivosmart 5")
        garmin_rows.append({id_col: pid, **g})
    participants = pd.DataFrame(part_rows)
    participants.insert(participants.columns.get_loc("study_visit_date") + 1, "recommended_split",
                        recommended_splits(groups, np.array(shares), split_draw))
    participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    (root / "wearable_blood_glucose").mkdir(exist_ok=True)
    pd.DataFrame(cgm_rows).to_csv(root / "wearable_blood_glucose" / "manifest.tsv", sep="\t", index=False)
    pd.DataFrame(garmin_rows).to_csv(root / "wearable_activity_monitor" / "manifest.tsv", sep="\t", index=False)
    (root / "README.md").write_text(
        f"# SYNTHETIC cohort (not AI-READI data)\n\nWritten by sensecf `write_synthetic_cohort` (seed {seed}, "
        f"{n_participants} participants, {days} days, layout {version}). Only CGM, activity, stress and sleep "
        "are simulated.\n")
    return root
