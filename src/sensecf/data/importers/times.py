"""Timestamps of exported files -> tz-aware local times.

- ISO 8601 (`2023-09-01T08:00:00`, with or without seconds, `T` or space, an offset `Z`/`+02:00` or none) and
  day/month layouts (`01-09-2023 08:00`, `09/01/2023 8:00 AM`: `-`, `/` or `.` separators, 12- or 24-hour clock);
- day/month order: `date_order` ("dmy" or "mdy"), else detected from the data (a first field above 12 means
  day-first, a second field above 12 month-first); a file where both readings fit is refused;
- with a time zone: naive timestamps are that zone's local clock (a DST-repeated hour's readings are dropped
  and counted, a skipped hour is shifted forward), timestamps with an offset are converted to it;
- without one: every timestamp is taken as the local clock it shows (an offset only says where that clock was),
  stored as UTC wall time (LOCAL_CLOCK), so windows and days follow the clock the wearer saw.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError

LOCAL_CLOCK = "UTC"        # the zone naive local-clock times are stored in when no time zone is given
DATE_ORDERS = ("dmy", "mdy")
_OFFSET = r"(?P<off>Z|[+-]\d{2}:?\d{2})$"
_DM = (r"^(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<y>\d{4})[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?"
       r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?$")


def check_timezone(tz: str | None) -> str | None:
    """An IANA zone name (e.g. Europe/Berlin) checked, or None."""
    if tz is None or not str(tz).strip():
        return None
    try:
        ZoneInfo(str(tz).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {tz!r}: give an IANA name such as Europe/Berlin or "
                          "America/New_York") from None
    return str(tz).strip()


def _offset_minutes(off: pd.Series) -> pd.Series:
    sign = np.where(off.str[0] == "-", -1, 1)
    digits = off.str.replace(":", "", regex=False).str[1:]
    minutes = pd.to_numeric(digits.str[:2], errors="coerce") * 60 + pd.to_numeric(digits.str[2:4], errors="coerce")
    return (sign * minutes).where(off != "Z", 0).fillna(0)


def detect_date_order(parts: pd.DataFrame, file: str, column: str) -> str:
    """'dmy' or 'mdy' from day/month fields; DataError when the data fit both or neither."""
    a, b = parts["a"].astype(int), parts["b"].astype(int)
    first_big, second_big = bool((a > 12).any()), bool((b > 12).any())
    if first_big and not second_big:
        return "dmy"
    if second_big and not first_big:
        return "mdy"
    if first_big and second_big:
        raise DataError("day/month order differs between rows (both fields exceed 12 somewhere)", file=file,
                        column=column)
    raise DataError(f"dates such as {parts['raw'].iloc[0]!r} read both as day-month and month-day and no day in "
                    "the file is above 12: say which with --date-order dmy or --date-order mdy", file=file,
                    column=column)


def _day_month(raw: pd.Series, date_order: str | None, file: str, column: str) -> pd.Series:
    parts = raw.str.extract(_DM)
    ok = parts["a"].notna()
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if not ok.any():
        return out
    p = parts[ok].assign(raw=raw[ok])
    order = date_order or detect_date_order(p, file, column)
    day, month = (p["a"], p["b"]) if order == "dmy" else (p["b"], p["a"])
    hour = p["H"].astype(int)
    ampm = p["ampm"].fillna("").str.lower().str[0]
    hour = np.where(ampm == "p", hour % 12 + 12, np.where(ampm == "a", hour % 12, hour))
    comp = pd.DataFrame({"year": p["y"].astype(int), "month": month.astype(int), "day": day.astype(int),
                         "hour": hour, "minute": p["M"].astype(int), "second": p["S"].fillna("0").astype(int)})
    out[ok] = pd.to_datetime(comp, errors="coerce")
    return out


def parse_times(values, file: str, column: str, tz: str | None = None,
                date_order: str | None = None) -> tuple[pd.DatetimeIndex, int]:
    """Timestamps -> (tz-aware local times, NaT where unreadable; number unreadable or dropped).

    `tz` None stores the local clock as LOCAL_CLOCK (see the module doc).
    """
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ConfigError(f"--date-order must be one of {DATE_ORDERS}, got {date_order!r}")
    raw = pd.Series(list(values), dtype=object).map(lambda v: str(v).strip() if v is not None else "")
    off = raw.str.extract(_OFFSET)["off"]
    naive = raw.str.replace(_OFFSET, "", regex=True).str.strip()
    wall = pd.to_datetime(naive, format="ISO8601", errors="coerce")
    rest = wall.isna() & (naive != "")
    if rest.any():
        wall[rest] = _day_month(naive[rest], date_order, file, column)
    has_off = off.notna() & wall.notna()
    if tz is None:
        local = wall.dt.tz_localize(LOCAL_CLOCK)
    else:
        local = pd.Series(pd.NaT, index=raw.index, dtype=f"datetime64[ns, {tz}]")
        if (~has_off).any():
            local[~has_off] = wall[~has_off].dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        if has_off.any():
            utc = wall[has_off] - pd.to_timedelta(_offset_minutes(off[has_off]), unit="min")
            local[has_off] = utc.dt.tz_localize("UTC").dt.tz_convert(tz)
    idx = pd.DatetimeIndex(local)
    unreadable = int(idx.isna().sum())
    if unreadable == len(idx) and len(idx):
        raise DataError(f"no timestamp could be read (e.g. {raw.iloc[0]!r}); expected ISO 8601 such as "
                        "2023-09-01T08:00:00 or a day/month layout such as 01-09-2023 08:00", file=file,
                        column=column)
    return idx, unreadable
