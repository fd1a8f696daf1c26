"""The machine's zone as the C library reads `$TZ`, for the values zoneinfo cannot: a POSIX rule
(`IST-5:30`, `<+0530>-5:30`, `EST5EDT,M3.2.0,M11.1.0`) rather than a zone name.

Offsets come from `time.localtime` (UTC to local) and `time.mktime` (local to UTC), as the
`LocalTimezone` example in Python's datetime documentation does. Pure: no I/O beyond the C
library's own reading of `$TZ`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, tzinfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LibcZone(tzinfo):
    """A tzinfo whose offsets and names are the C library's for `$TZ` (time.tzset() applies)."""

    def _local(self, dt: datetime) -> time.struct_time:
        """The C library's view of a wall-clock time in this zone (mktime: fold 0 is its
        choice too, the earlier of an ambiguous hour)."""
        stamp = time.mktime((dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.weekday(), 0, -1))
        return time.localtime(stamp)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(seconds=time.localtime().tm_gmtoff)
        return timedelta(seconds=self._local(dt).tm_gmtoff)

    def dst(self, dt: datetime | None) -> timedelta:
        if dt is None or not self._local(dt).tm_isdst:
            return timedelta(0)
        return self.utcoffset(dt) - timedelta(seconds=-time.timezone)  # time.timezone: standard, west > 0

    def tzname(self, dt: datetime | None) -> str:
        return self._local(dt).tm_zone if dt is not None else time.tzname[0]

    def fromutc(self, dt: datetime) -> datetime:
        stamp = (dt.replace(tzinfo=UTC) - _EPOCH).total_seconds()
        return (dt + timedelta(seconds=time.localtime(stamp).tm_gmtoff)).replace(tzinfo=self)

    def __repr__(self) -> str:
        return "LibcZone()"
