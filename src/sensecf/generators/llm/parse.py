"""Read a model's <new> ... </new> answer into a schema row, tolerantly but never by guessing.

Tolerated: code fences, a missing closing tag (the block then ends once every feature has been given: small
models often run on repeating lines until the token limit), bullets ("-", "*", "•", "1."), case,
spacing and punctuation in names, the display or the column name, "Modified"/"New" prefixes, units in
parentheses, units/commas/% around numbers, categorical levels in any case or spacing.
Rejected with a precise reason: no block, a line that is not "Feature: value", unknown or duplicate features,
missing features, values that are not a (single) number, non-integers for integer features, unknown levels,
and an answer identical to the factual (compared as formatted in the prompt).
With partial=True (the "compact" prompt style) the block lists only the changed features: a signed number
("+2.0", "-1.5") is a change from the factual's value, an unsigned one the new value; the features not listed
keep the factual's values, and in an unclosed block a repeated feature ends the list instead of failing it.
Words after a number ("120 steps per minute") are allowed; a second number is not.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from ...schema import FeatureSpec, Schema
from .prompt import feature_heading

_OPEN = re.compile(r"<\s*new\s*>", re.I)
_CLOSE = re.compile(r"<\s*/\s*new\s*>", re.I)
_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
_BULLET = re.compile(r"^\s*(?:[-*•·]+|\d+[.)])\s*")
_PREFIX = re.compile(r"^(?:modified|new|changed|updated|counterfactual)\b[\s:_-]*", re.I)
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SIGNED = re.compile(r"^\s*[-+−]\s*\d")
_NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+−]?\.\d+")


@dataclass
class ParseResult:
    """The parsed CF row (schema columns, canonical dtypes) or None, and why it failed ("" on success)."""

    row: pd.Series | None
    reason: str = ""
    tagged: bool = True  # False: read without a <new> tag (only with require_tag=False)

    @property
    def ok(self) -> bool:
        return self.row is not None


def _key(text: str) -> str:
    """Comparable form of a name: no parentheses, lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", _PAREN.sub("", text).lower())


def name_index(schema: Schema) -> dict[str, str]:
    """Normalised aliases (column name, display name, display with unit) -> column; ambiguous aliases dropped."""
    seen: dict[str, set[str]] = {}
    for f in schema.features:
        for alias in {f.name, f.label, feature_heading(f)}:
            k = _key(alias)
            if k:
                seen.setdefault(k, set()).add(f.name)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def _match_name(raw: str, index: dict[str, str]) -> str | None:
    name = raw.strip().strip("*_`\"'").strip()
    for candidate in (name, _PREFIX.sub("", name)):
        col = index.get(_key(candidate))
        if col:
            return col
    return None


def extract_block(text: str) -> tuple[str | None, bool]:
    """(body of the first <new> block with fences removed, whether it was closed); (None, False) if none."""
    m = _OPEN.search(text or "")
    if not m:
        return None, False
    rest = text[m.end():]
    end = _CLOSE.search(rest)
    body = rest[:end.start()] if end else rest
    return _FENCE.sub("", body), end is not None


def parse_value(value: str, f: FeatureSpec) -> tuple[object, str]:
    """(value, "") or (None, reason) for one feature's value text."""
    text = value.strip().strip("*_`\"'").strip().rstrip(".;,").strip()
    if not text:
        return None, f"{f.name}: empty value"
    if f.is_categorical:
        want = _key(text)
        hits = [lv for lv in f.levels if _key(lv) == want or lv.lower() == text.lower()]
        if not hits:  # numeric-looking levels ("1" vs "1.0")
            nums = _NUMBER.fullmatch(text)
            hits = [lv for lv in f.levels if nums and _NUMBER.fullmatch(lv) and
                    float(lv.replace(",", "")) == float(text.replace(",", ""))]
        if len(hits) != 1:
            return None, f"{f.name}: {text!r} is not one of {f.levels}"
        return hits[0], ""
    if f.unit:
        text = re.sub(re.escape(f.unit), " ", text, flags=re.I)
    nums = _NUMBER.findall(text)
    if not nums:
        return None, f"{f.name}: {value.strip()!r} is not a number"
    if len(nums) > 1:
        return None, f"{f.name}: {value.strip()!r} holds several numbers"
    v = float(nums[0].replace(",", "").replace("−", "-"))
    if not math.isfinite(v):
        return None, f"{f.name}: {nums[0][:20]}... is not a finite number"
    if f.kind == "integer" and abs(v - round(v)) > 1e-9:
        return None, f"{f.name}: {v:g} is not a whole number"
    return v, ""


def parse_answer(text: str, schema: Schema, factual: pd.Series, require_tag: bool = True,
                 partial: bool = False) -> ParseResult:
    """Parse a model answer into a CF row for `factual`; every failure names its cause.

    partial=True reads a changes-only answer (features not listed keep the factual's values).

    require_tag=False also reads an answer without <new> (small models often drop the tags): the list then
    starts at the first line naming a feature and ends once every feature is given; the result has tagged=False.
    """
    body, closed = extract_block(text)
    index = name_index(schema)
    tagged = body is not None
    if body is None:
        if require_tag:
            return ParseResult(None, "no <new> block in the answer")
        body = _FENCE.sub("", text or "")
        lines = body.splitlines()
        start = next((i for i, ln in enumerate(lines) if ":" in ln and
                      _match_name(_BULLET.sub("", ln.strip()).partition(":")[0], index)), None)
        if start is None:
            return ParseResult(None, "no <new> block and no feature lines in the answer", tagged=False)
        body = "\n".join(lines[start:])
    values: dict[str, object] = {}
    for line in body.splitlines():
        if not closed and len(values) == len(schema.features):
            break  # unclosed block: the answer ends once every feature is given (the model ran on)
        if not line.strip():
            continue
        item = _BULLET.sub("", line.strip())
        if ":" not in item:
            return ParseResult(None, f"line {line.strip()[:60]!r} is not 'Feature: value'", tagged)
        name, _, value = item.partition(":")
        col = _match_name(name, index)
        if col is None:
            return ParseResult(None, f"unknown feature {name.strip()[:60]!r}", tagged)
        if col in values:
            if partial and not closed:
                break  # an unclosed changes-only list that starts repeating itself has ended
            return ParseResult(None, f"feature {col!r} given twice", tagged)
        f = schema[col]
        relative = partial and not f.is_categorical and _SIGNED.match(value.strip().strip("*_`\"'"))
        v, problem = parse_value(value, f)
        if problem:
            return ParseResult(None, problem, tagged)
        values[col] = float(f.format_value(float(factual[col]) + v)) if relative else v  # no float residue
    if partial:
        if not values:
            return ParseResult(None, "no feature lines in the <new> block", tagged)
        values = {c: values.get(c, factual[c]) for c in schema.feature_names}
    missing = [c for c in schema.feature_names if c not in values]
    if missing:
        return ParseResult(None, f"missing feature(s): {', '.join(missing)}", tagged)
    row = pd.Series({c: values[c] for c in schema.feature_names}, dtype=object, name=factual.name)
    if all(f.format_value(row[f.name]) == f.format_value(factual[f.name]) for f in schema.features):
        return ParseResult(None, "copied the factual unchanged", tagged)
    return ParseResult(row, "", tagged)
