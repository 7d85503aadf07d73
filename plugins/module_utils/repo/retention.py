# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention policies (format section 10): which restore points of one VM to keep, as restic's ``forget``."""

from __future__ import annotations

import datetime

from ..errors import ConfigurationError

RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")

_BUCKETS = {
    "keep_hourly": lambda t: t.strftime("%Y-%m-%d %H"),
    "keep_daily": lambda t: t.strftime("%Y-%m-%d"),
    "keep_weekly": lambda t: "%04d-W%02d" % t.isocalendar()[:2],
    "keep_monthly": lambda t: t.strftime("%Y-%m"),
    "keep_yearly": lambda t: t.strftime("%Y"),
}


def _zone(name):
    """The tzinfo of an IANA time zone name (None or "UTC": UTC)."""
    if name in (None, "", "UTC"):
        return datetime.timezone.utc
    try:
        import zoneinfo  # Python 3.9+

        return zoneinfo.ZoneInfo(name)
    except (ImportError, ValueError, KeyError, OSError) as exc:
        raise ConfigurationError("Unknown retention time zone %r (%s); use an IANA name such as Europe/Paris, "
                                 "or UTC." % (name, type(exc).__name__)) from None


def check_policy(policy):
    """A normalised policy dict {rule: count, "timezone": tzinfo}; counts are integers >= 0, or -1 for "all".

    ``timezone`` (optional, IANA name, default UTC) is the calendar the hour/day/week/month/year buckets use.
    Refuses an empty policy.
    """
    if not isinstance(policy, dict):
        raise ConfigurationError("A retention policy is a dict of %s, got %r." % (", ".join(RULES), policy))
    unknown = sorted(set(policy) - set(RULES) - {"timezone"})
    if unknown:
        raise ConfigurationError("Unknown retention rule(s) %s; use %s." % (", ".join(unknown), ", ".join(RULES)))
    normalised = {}
    for rule in RULES:
        value = policy.get(rule)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ConfigurationError("Retention rule %s must be an integer >= 0 (or -1 for all), got %r." % (rule, value))
        normalised[rule] = value
    if not any(normalised.values()):
        raise ConfigurationError("The retention policy keeps nothing; refusing to remove every restore point. "
                                 "Set at least one of %s." % ", ".join(RULES))
    normalised["timezone"] = _zone(policy.get("timezone"))
    return normalised


def apply_policy(points, policy):
    """Split ``points`` (objects with ``.created``, one VM) into (keep [(point, reasons)], remove [point]).

    Newest first: a point is kept by keep_last while that count lasts, and by a bucket rule when it is the
    newest point of a bucket (hour, day, ISO week, month, year in the policy's time zone, default UTC) not yet
    used, while the rule's count lasts.
    """
    policy = check_policy(policy)
    zone = policy.pop("timezone")
    remaining = dict(policy)
    last_bucket = {}
    keep, remove = [], []
    for point in sorted(points, key=lambda p: (p.created, p.id), reverse=True):
        reasons = []
        if remaining["keep_last"] != 0:
            reasons.append("last")
            remaining["keep_last"] -= 1 if remaining["keep_last"] > 0 else 0
        for rule, bucket_of in _BUCKETS.items():
            if remaining[rule] == 0:
                continue
            bucket = bucket_of(point.created.astimezone(zone))
            if bucket != last_bucket.get(rule):
                last_bucket[rule] = bucket
                reasons.append(rule[len("keep_"):])
                remaining[rule] -= 1 if remaining[rule] > 0 else 0
        if reasons:
            keep.append((point, reasons))
        else:
            remove.append(point)
    return keep, remove
