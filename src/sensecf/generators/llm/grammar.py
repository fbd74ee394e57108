"""The answer grammar of one counterfactual prompt, in GBNF (llama.cpp's grammar format, which xgrammar and vLLM
read too): with constrained decoding the model can write nothing else.

- "compact": "<new>", then one "- <heading>: <change>" line per changed feature in schema order (mutable features
  only, each at most once, at least one): a sign the feature's allowed direction permits ("+" for increase, "-"
  for decrease; neither at the bound it would cross) and a non-zero number, or for a categorical feature a level
  other than the factual's; "</new>".
- "paper": "<new>", then every feature's "- <heading>: <value>" line in schema order: fixed features copy the
  factual's value, mutable numbers stay on the side of the factual's value that the direction allows, and at
  least one value differs from the factual's; "</new>".

Headings are prompt.feature_heading's; numbers are written as prompt.render_answer writes them
(FeatureSpec.format_value: no leading zeros, exactly `precision` decimals, none for integer features), with at
most as many integer digits as the feature's bounds need (UNBOUNDED_DIGITS without bounds) and a minus sign only
where the lower bound allows negative values (other bounds are the verifier's). Each number thus has one
spelling, so "differs from the factual" and "on the allowed side" are decided on the text, as parse.parse_answer
compares formatted values; every answer the grammar accepts is one parse_answer reads.
"""

from __future__ import annotations

import pandas as pd

from ...schema import FeatureSpec, Schema
from .prompt import STYLES, feature_heading

UNBOUNDED_DIGITS = 9  # integer digits allowed for a feature without both bounds
_END = '"</new>"'
_NEWLINE = '"\\n"'


def answer_grammar(schema: Schema, factual: pd.Series, target: int, style: str = "paper") -> str:
    """GBNF of the answers to the counterfactual prompt of `factual` towards class `target` (see the module
    docstring). A factual no allowed change can alter gets a grammar of the unchanged answer."""
    if style not in STYLES:
        raise ValueError(f"prompt style must be one of {STYLES}, got {style!r}")
    lines = [_Line(f, f.format_value(factual[f.name]), f.allowed_direction(target, schema.desired_class), style)
             for f in schema.features]
    rules: dict[str, str] = {}
    body = _compact(lines, rules) if style == "compact" else _paper(lines, rules)
    ordered = sorted(rules.items(), key=lambda kv: (kv[0][0], int(kv[0][1:])))
    return "\n".join([f'root ::= "<new>\\n" {body}', *(f"{k} ::= {v}" for k, v in ordered)]) + "\n"


class _Line:
    """One feature's answer line: its heading and the value texts it may take."""

    def __init__(self, f: FeatureSpec, value: str, way: str, style: str):
        self.head = lit(f"- {feature_heading(f)}: ")
        self.same = lit(value)
        if f.immutable:
            self.changes: list[str] = []
        elif f.is_categorical:
            self.changes = [lit(level) for level in f.levels if level != value]
        elif style == "compact":
            lo, hi = f.bounds
            signs = "+" * (way != "decrease" and (hi is None or float(value) < hi)) + \
                "-" * (way != "increase" and (lo is None or float(value) > lo))
            digits = _digits(hi - lo) if lo is not None and hi is not None else UNBOUNDED_DIGITS
            magnitude = alt(_magnitudes(_zero(f), ">", digits, _decimals(f)))
            self.changes = [f"{lit(signs) if len(signs) == 1 else '[+-]'} {magnitude}"] if signs else []
        else:
            self.changes = _numbers(f, value, way)

    def changed(self) -> str | None:
        """GBNF of this line with a changed value (None when it cannot change)."""
        return f"{self.head} {alt(self.changes)} {_NEWLINE}" if self.changes else None

    def any(self) -> str:
        """GBNF of this line with the factual's or a changed value (paper style)."""
        return f"{self.head} {alt([self.same, *self.changes])} {_NEWLINE}"


def _paper(lines: list[_Line], rules: dict[str, str]) -> str:
    """Every line in order; rule c<i> = lines i.. while nothing has changed yet, f<i> = lines i.. after a change."""
    def free(i: int) -> str:
        if i == len(lines):
            return _END
        if f"f{i}" not in rules:
            rules[f"f{i}"] = f"{lines[i].any()} {free(i + 1)}"
        return f"f{i}"

    def unchanged(i: int) -> str | None:
        if i == len(lines):
            return None  # the answer would equal the factual
        rest, changed = unchanged(i + 1), lines[i].changed()
        options = ([f"{lines[i].head} {lines[i].same} {_NEWLINE} {rest}"] if rest else []) + \
            ([f"{changed} {free(i + 1)}"] if changed else [])
        if not options:
            return None
        rules[f"c{i}"] = " | ".join(options)
        return f"c{i}"

    return unchanged(0) or free(0)  # no allowed change at all: the unchanged answer


def _compact(lines: list[_Line], rules: dict[str, str]) -> str:
    """Changed lines in schema order, at least one: c<i> = lines i.. before any, f<i> = lines i.. after one."""
    def free(i: int) -> str:
        if i == len(lines):
            return _END
        changed = lines[i].changed()
        if not changed:
            return free(i + 1)
        if f"f{i}" not in rules:
            rules[f"f{i}"] = f"({changed})? {free(i + 1)}"
        return f"f{i}"

    def first(i: int) -> str | None:
        if i == len(lines):
            return None
        rest, changed = first(i + 1), lines[i].changed()
        options = ([f"{changed} {free(i + 1)}"] if changed else []) + ([rest] if rest else [])
        if not options:
            return None
        rules[f"c{i}"] = " | ".join(options)
        return f"c{i}"

    return first(0) or _END


# --- numbers: canonical decimal strings compared as text ------------------------------------------------------
def lit(text: str) -> str:
    """A GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def alt(options: list[str]) -> str:
    """A parenthesised GBNF alternation."""
    return "(" + " | ".join(options) + ")"


def _digits(x: float) -> int:
    return len(str(int(abs(x))))


def _decimals(f: FeatureSpec) -> int:
    return 0 if f.kind == "integer" else f.precision


def _zero(f: FeatureSpec) -> str:
    return f.format_value(0)


def _numbers(f: FeatureSpec, value: str, way: str) -> list[str]:
    """Alternatives of the feature's numbers other than `value` on the side `way` ("increase" | "decrease" |
    "any") allows."""
    lo, hi = f.bounds
    digits = max(_digits(max(abs(lo), abs(hi))) if lo is not None and hi is not None else UNBOUNDED_DIGITS,
                 len(value.lstrip("-").partition(".")[0]))
    negatives = lo is None or lo < 0
    p = _decimals(f)
    up, down = [], []
    if way in ("increase", "any"):
        if value.startswith("-"):
            smaller = _magnitudes(value[1:], "<", digits, p)
            up = ([f'"-" {alt(smaller)}'] if smaller else []) + [_any_magnitude(digits, p)]
        else:
            up = _magnitudes(value, ">", digits, p)
    if way in ("decrease", "any"):
        if value.startswith("-"):
            down = [f'"-" {alt(_magnitudes(value[1:], ">", digits, p))}']
        else:
            negative = [f'"-" {alt(_magnitudes(_zero(f), ">", digits, p))}'] if negatives else []
            down = _magnitudes(value, "<", digits, p) + negative
    return up + down


def _any_magnitude(digits: int, p: int) -> str:
    return f"{alt(_integer_parts(1, digits))}{_any_decimals(p)}"


def _any_decimals(p: int) -> str:
    return (' "." [0-9]' + (f"{{{p}}}" if p > 1 else "")) if p else ""


def _integer_parts(shortest: int, longest: int) -> list[str]:
    """Integer parts of shortest..longest digits without leading zeros."""
    out = ['"0"'] if shortest <= 1 <= longest else []
    if longest >= max(shortest, 1):
        a, b = max(shortest, 1) - 1, longest - 1
        out.append("[1-9]" + ("" if b == 0 else f" [0-9]{{{a}}}" if a == b else f" [0-9]{{{a},{b}}}"))
    return out


def _magnitudes(value: str, rel: str, digits: int, p: int) -> list[str]:
    """Alternatives of the non-negative numbers (at most `digits` integer digits, `p` decimals) greater (rel ">")
    or smaller ("<") than the non-negative `value`: a longer or shorter integer part, or the same length and a
    larger or smaller digit at the first position that differs."""
    whole, _, frac = value.partition(".")
    text = whole + frac
    out = []
    for k, ch in enumerate(text):
        d = int(ch)
        lo, hi = (d + 1, 9) if rel == ">" else (1 if k == 0 and len(whole) > 1 else 0, d - 1)
        if lo <= hi:
            atoms = list(text[:k]) + [str(lo) if lo == hi else f"[{lo}-{hi}]"] + ["[0-9]"] * (len(text) - k - 1)
            out.append(_render(atoms, len(whole), p))
    parts = _integer_parts(len(whole) + 1, digits) if rel == ">" else _integer_parts(1, len(whole) - 1)
    return out + [f"{part}{_any_decimals(p)}" for part in parts]


def _render(atoms: list[str], whole: int, p: int) -> str:
    """GBNF of a digit pattern (digits and classes), with the decimal point after `whole` atoms when p > 0."""
    if p:
        atoms = atoms[:whole] + ["."] + atoms[whole:]
    out, text = [], ""
    for a in atoms:
        if a.startswith("["):
            out += [lit(text)] if text else []
            out.append(a)
            text = ""
        else:
            text += a
    return " ".join(out + ([lit(text)] if text else []))
