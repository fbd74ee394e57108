"""parse_answer: tolerant reading of <new> blocks and precise reasons for every malformed kind."""

import pandas as pd
import pytest

from sensecf.generators.llm.parse import parse_answer
from sensecf.generators.llm.prompt import render_answer
from sensecf.data.aireadi.schema import aireadi_stress_schema

SCHEMA = aireadi_stress_schema()
FACTUAL = pd.Series({"awake_pct": 12.5, "light_pct": 50.0, "deep_pct": 15.0, "rem_pct": 22.5, "mean_steps": 20.0,
                     "mean_glucose": 110.0, "hyper_events": 1.0, "time_in_range_pct": 90.0, "age": 55.0,
                     "gender": "female", "medication": "oral", "subgroup": "oral_t2dm"}, name=7)


def cf(**changes) -> pd.Series:
    row = FACTUAL.copy()
    for k, v in changes.items():
        row[k] = v
    return row


def lines(row: pd.Series) -> list[str]:
    return render_answer(row, SCHEMA).splitlines()[1:-1]


def test_round_trip_of_render_answer():
    want = cf(mean_steps=80.0, awake_pct=8.0)
    got = parse_answer("Sure!\n" + render_answer(want, SCHEMA) + "\nHope this helps.", SCHEMA, FACTUAL)
    assert got.ok and got.reason == ""
    assert got.row.name == 7
    for f in SCHEMA.features:
        assert f.format_value(got.row[f.name]) == f.format_value(want[f.name])


def test_tolerant_names_values_and_fences():
    text = """```
<NEW>
1. **Modified Awake %**: 8.0%
2. Light sleep % (%): 54.5 %
* deep_pct: 15
- REM SLEEP %: 22.5
- New Mean steps (steps/min): 1,234.5 steps per minute
- mean-glucose: 105 mg/dL
- Hyperglycemic Events: 0 events
- Time in range %: 95
- Age (years): 55
- gender: FEMALE
- Medication: Oral
- Patient subgroup: Oral T2DM
</new>
```"""
    got = parse_answer(text, SCHEMA, FACTUAL)
    assert got.ok, got.reason
    r = got.row
    assert r["awake_pct"] == 8.0 and r["light_pct"] == 54.5 and r["mean_steps"] == 1234.5
    assert r["mean_glucose"] == 105.0 and r["hyper_events"] == 0.0
    assert (r["gender"], r["medication"], r["subgroup"]) == ("female", "oral", "oral_t2dm")


def test_unclosed_block_ends_once_every_feature_is_given():
    body = lines(cf(mean_steps=90.0))
    text = "<new>\n" + "\n".join(body + body[:3])  # the model ran on, repeating lines, no closing tag
    got = parse_answer(text, SCHEMA, FACTUAL)
    assert got.ok and got.row["mean_steps"] == 90.0


@pytest.mark.parametrize("text, reason", [
    ("- Awake %: 8.0", "no <new> block in the answer"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0))[:-1]) + "\n</new>", "missing feature(s): subgroup"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0)) + ["- Heart rate: 70"]) + "\n</new>",
     "unknown feature 'Heart rate'"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0)) + ["- Mean steps: 95"]) + "\n</new>",
     "feature 'mean_steps' given twice"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0))).replace("90.0", "a lot more") + "\n</new>",
     "mean_steps: 'a lot more' is not a number"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0))).replace("90.0", "20 -> 90") + "\n</new>",
     "mean_steps: '20 -> 90' holds several numbers"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0))).replace("events: 1", "events: 1.5") + "\n</new>",
     "hyper_events: 1.5 is not a whole number"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0))).replace("Gender: female", "Gender: other") + "\n</new>",
     "gender: 'other' is not one of ['female', 'male', 'unknown']"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0))).replace("Gender: female", "Gender female") + "\n</new>",
     "line '- Gender female' is not 'Feature: value'"),
    ("<new>\n" + "\n".join(lines(cf(mean_steps=90.0))).replace("Age (years): 55", "Age (years):") + "\n</new>",
     "age: empty value"),
    (render_answer(FACTUAL, SCHEMA), "copied the factual unchanged"),
])
def test_malformed_answers_fail_with_a_precise_reason(text, reason):
    got = parse_answer(text, SCHEMA, FACTUAL)
    assert got.row is None and not got.ok
    assert got.reason == reason


def test_copy_is_judged_at_the_prompt_precision():
    """12.54 is shown as 12.5 in the prompt; answering 12.5 is a copy, not a change."""
    factual = cf(awake_pct=12.54)
    assert parse_answer(render_answer(factual, SCHEMA), SCHEMA, factual).reason == "copied the factual unchanged"


def test_untagged_answers_only_when_allowed():
    body = "\n".join(lines(cf(mean_steps=90.0)))
    text = f"The modified instance is:\n\n{body}\n\nThe modified instance is:\n{body}"
    assert parse_answer(text, SCHEMA, FACTUAL).reason == "no <new> block in the answer"
    got = parse_answer(text, SCHEMA, FACTUAL, require_tag=False)
    assert got.ok and not got.tagged and got.row["mean_steps"] == 90.0
    assert parse_answer(render_answer(cf(mean_steps=90.0), SCHEMA), SCHEMA, FACTUAL, require_tag=False).tagged
    assert parse_answer("Walk more: it helps.", SCHEMA, FACTUAL, require_tag=False).reason == \
        "no <new> block and no feature lines in the answer"
    short = "\n".join(lines(cf(mean_steps=90.0))[:5])
    assert parse_answer(short, SCHEMA, FACTUAL, require_tag=False).reason.startswith("missing feature(s): mean_glucose")


def test_compact_answers_list_only_changes_and_parse_back():
    want = cf(rem_pct=25.0, mean_steps=12.5, hyper_events=0.0, medication="insulin")
    answer = render_answer(want, SCHEMA, FACTUAL)
    assert answer == ("<new>\n- REM sleep %: +2.5\n- Mean steps (steps/min): -7.5\n- Hyperglycemic events: -1\n"
                      "- Medication: insulin\n</new>")
    got = parse_answer(answer, SCHEMA, FACTUAL, partial=True)
    assert got.ok and all(f.format_value(got.row[f.name]) == f.format_value(want[f.name]) for f in SCHEMA.features)
    assert parse_answer(answer, SCHEMA, FACTUAL).reason.startswith("missing feature(s)")  # paper style: all needed
    absolute = parse_answer("<new>\n- REM sleep %: 30\n- Awake %: −2.5\n</new>", SCHEMA, FACTUAL, partial=True)
    assert (absolute.row["rem_pct"], absolute.row["awake_pct"]) == (30.0, 10.0)  # unsigned = new value
    assert parse_answer("<new>\n- Hyperglycemic events: +0.5\n</new>", SCHEMA, FACTUAL, partial=True).reason == \
        "hyper_events: 0.5 is not a whole number"
    ran_on = "<new>\n- REM sleep %: +1.0\n- REM sleep %: +2.0\n- REM sleep %: +3.0"
    assert parse_answer(ran_on, SCHEMA, FACTUAL, partial=True).row["rem_pct"] == 23.5
    assert parse_answer(ran_on + "\n</new>", SCHEMA, FACTUAL, partial=True).reason == "feature 'rem_pct' given twice"
    assert parse_answer("<new>\n</new>", SCHEMA, FACTUAL, partial=True).reason == "no feature lines in the <new> block"
    for same in ("<new>\n- REM sleep %: 22.5\n</new>", "<new>\n- REM sleep %: +0.0\n</new>"):
        assert parse_answer(same, SCHEMA, FACTUAL, partial=True).reason == "copied the factual unchanged"
