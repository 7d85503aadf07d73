# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's charts as inline SVG, drawn here in Python: no JavaScript, no library, nothing fetched, so the report
opens offline. Each function takes the report's rows (ops.report) and returns one ``<svg>`` element as text.

Every string that comes from the repository (VM names, ids, reasons) goes through ``esc`` (html.escape, quotes
included) before it reaches the markup; numbers are formatted here. Output is deterministic (fixed decimals), so an
unchanged repository draws the same bytes.
"""

from __future__ import annotations

import datetime
import html
import math
import re

__all__ = ["esc", "parse_time", "human_bytes", "ratio_text", "timeline", "bytes_bars", "ratio_lines", "consumer_bars", "MODE_COLORS"]

WIDTH = 960
MODE_COLORS = {"full": "#1f6feb", "incremental": "#2da44e", "auto": "#bf8700"}
READ_COLOR = "#9fb4cc"
STORED_COLOR = "#b3261e"
DEDUP_COLOR = "#1f6feb"
COMPRESSION_COLOR = "#8250df"
AXIS_COLOR = "#57606a"
GRID_COLOR = "#d0d7de"
#: VMs the timeline draws a lane for (the tables list every VM)
MAX_LANES = 60
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$")


def esc(value):
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def parse_time(text):
    """The aware UTC datetime of a repository time (``2026-11-26T08:31:27.412093Z``, fraction optional), else None."""
    match = _TIME.match(text) if isinstance(text, str) else None
    if not match:
        return None
    try:
        moment = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    micros = int((match.group(2) or "0").ljust(6, "0"))
    return moment.replace(microsecond=micros, tzinfo=datetime.timezone.utc)


def human_bytes(count):
    """``count`` bytes in binary units: 0 B, 512 B, 1.50 KiB, 20.0 MiB, 3.21 GiB."""
    if count is None:
        return "-"
    value, unit = float(count), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    if unit == 0:
        return "%d B" % count
    return ("%.2f %s" if value < 10 else "%.1f %s" if value < 100 else "%.0f %s") % (value, _UNITS[unit])


def ratio_text(ratio):
    return "-" if ratio is None else "%.2f\u00d7" % ratio


def _short(text, limit=26):
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _nice_ceiling(value):
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _nice_bytes(value):
    """A round byte count at least ``value``: a nice ceiling (1, 2, 4, 5 or 10) in the binary unit of ``value``, so that
    the quarter marks of an axis read 5 MiB, 10 MiB, ... rather than 4.77 MiB."""
    unit = 1
    while value >= 1024 * unit and unit < 1024 ** (len(_UNITS) - 1):
        unit *= 1024
    scaled = value / unit
    if scaled <= 0:
        return unit
    power = 10 ** math.floor(math.log10(scaled))
    for step in (1, 2, 4, 5, 10):
        if step * power >= scaled:
            return step * power * unit
    return 10 * power * unit


def _svg(chart_id, height, label, body):
    return ('<svg xmlns="http://www.w3.org/2000/svg" id="%s" class="chart" role="img" width="%d" height="%d" '
            'viewBox="0 0 %d %d" aria-label="%s"><title>%s</title>%s</svg>'
            % (chart_id, WIDTH, height, WIDTH, height, esc(label), esc(label), "".join(body)))


def _text(x, y, content, anchor="start", size=12, color=AXIS_COLOR, extra=""):
    return '<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" fill="%s"%s>%s</text>' % (
        x, y, anchor, size, color, extra, esc(content))


def _no_data(chart_id, label):
    return _svg(chart_id, 80, label, [_text(WIDTH / 2, 45, "no restore point to show", anchor="middle", size=14)])


def _legend(x, y, entries):
    """Swatches with labels in a row from (x, y): entries of (color, label, shape) with shape dot|bar|line|ring."""
    parts = []
    for color, label, shape in entries:
        if shape == "dot":
            parts.append('<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/>' % (x + 5, y - 4, color))
        elif shape == "ring":
            parts.append('<circle cx="%.1f" cy="%.1f" r="6" fill="none" stroke="%s" stroke-width="2"/>' % (x + 5, y - 4, color))
        elif shape == "line":
            parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>' % (x, y - 4, x + 12, y - 4, color))
        else:
            parts.append('<rect x="%.1f" y="%.1f" width="12" height="10" fill="%s"/>' % (x, y - 9, color))
        parts.append(_text(x + 17, y, label))
        x += 30 + 7 * len(label)
    return "".join(parts)


class _TimeAxis:
    """Maps datetimes onto [x0, x1]; a single moment sits in the middle."""

    def __init__(self, moments, x0, x1):
        self.start, self.end = min(moments), max(moments)
        self.x0, self.x1 = x0, x1

    def x(self, moment):
        span = (self.end - self.start).total_seconds()
        if span <= 0:
            return (self.x0 + self.x1) / 2
        return self.x0 + (moment - self.start).total_seconds() / span * (self.x1 - self.x0)

    @property
    def label_format(self):
        """strftime format of the labels: the date over days, the time to the minute over hours, else to the second."""
        span = (self.end - self.start).total_seconds()
        return "%Y-%m-%d" if span > 3 * 86400 else "%m-%d %H:%M" if span > 3600 else "%H:%M:%S"

    def ticks(self, y, count=5):
        span = (self.end - self.start).total_seconds()
        fmt = self.label_format
        if span <= 0:
            moments = [self.start]
        else:
            moments = [self.start + datetime.timedelta(seconds=span * i / (count - 1)) for i in range(count)]
        parts, previous = [], None
        for moment in moments:
            x = self.x(moment)
            parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>' % (x, y, x, y + 5, AXIS_COLOR))
            text = moment.strftime(fmt)
            if text != previous:        # restore points seconds apart: one label, not five equal ones
                parts.append(_text(x, y + 18, text, anchor="middle", size=11))
            previous = text
        return "".join(parts)


def timeline(vms, describe, max_lanes=MAX_LANES):
    """Restore points on a time axis, one lane per VM: a dot per restore point coloured by its mode, ringed when a
    validation passed it. ``describe(point)`` is its tooltip text. Beyond ``max_lanes`` VMs the chart shows the first
    ones and says how many more the tables list."""
    label = "Restore points per VM over time"
    points = [p for vm in vms for p in vm.points]
    if not points:
        return _no_data("chart-timeline", label)
    hidden = max(0, len(vms) - max_lanes)
    vms = vms[:max_lanes]
    lane, top, left = 30, 44, 200
    height = top + lane * len(vms) + 40 + (20 if hidden else 0)
    axis = _TimeAxis([p.moment for p in points], left + 12, WIDTH - 24)
    body = [_legend(left, 22, [(MODE_COLORS["full"], "full", "dot"), (MODE_COLORS["incremental"], "incremental", "dot"),
                               (MODE_COLORS["auto"], "mixed (per disk)", "dot"), ("#24292f", "validated", "ring")])]
    for number, vm in enumerate(vms):
        y = top + lane * number + lane / 2
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>' % (left, y, WIDTH - 12, y, GRID_COLOR))
        body.append(_text(left - 10, y + 4, _short(vm.name), anchor="end", color="#24292f",
                          extra=' class="lane" data-vm-key="%s"' % esc(vm.key)))
        for point in vm.points:
            x = axis.x(point.moment)
            color = MODE_COLORS.get(point.backup_mode, MODE_COLORS["auto"])
            body.append('<g class="restore-point"><title>%s</title><circle cx="%.1f" cy="%.1f" r="5" fill="%s"/>%s</g>' % (
                esc(describe(point)), x, y, color,
                '<circle cx="%.1f" cy="%.1f" r="8" fill="none" stroke="#24292f" stroke-width="2"/>' % (x, y)
                if point.validated is not None else ""))
    bottom = top + lane * len(vms) + 6
    body.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>' % (left, bottom, WIDTH - 12, bottom, AXIS_COLOR))
    body.append(axis.ticks(bottom))
    if hidden:
        body.append(_text(left, bottom + 38, "and %d more VMs: see the tables below" % hidden, extra=' class="more"'))
    return _svg("chart-timeline", height, label, body)


def _value_axis(top, bottom, left, right, maximum, fmt):
    """Horizontal grid lines with labels at 0, 1/4 ... of ``maximum``; returns (markup, y of a value)."""
    def y_of(value):
        return bottom - (bottom - top) * (value / maximum)
    parts = []
    for step in range(5):
        value = maximum * step / 4
        y = y_of(value)
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>' % (left, y, right, y, GRID_COLOR))
        parts.append(_text(left - 8, y + 4, fmt(value), anchor="end", size=11))
    return "".join(parts), y_of


def bytes_bars(points):
    """Bytes read and bytes stored of each restore point, oldest first: two bars per restore point."""
    label = "Bytes read and bytes stored per restore point"
    if not points:
        return _no_data("chart-bytes", label)
    top, bottom, left, right, height = 40, 250, 90, WIDTH - 16, 290
    maximum = _nice_bytes(max(max(p.bytes_read, p.bytes_stored) for p in points))
    grid, y_of = _value_axis(top, bottom, left, right, maximum, lambda v: human_bytes(int(v)))
    body = [_legend(left, 22, [(READ_COLOR, "read", "bar"), (STORED_COLOR, "stored (compressed, encrypted)", "bar")]), grid]
    slot = (right - left) / len(points)
    thickness = max(1.0, min(18.0, slot * 0.4))
    for number, point in enumerate(points):
        x = left + slot * number + slot / 2
        for offset, value, color, what in ((-thickness, point.bytes_read, READ_COLOR, "read"),
                                           (0, point.bytes_stored, STORED_COLOR, "stored")):
            y = y_of(value)
            body.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>' % (
                x + offset, y, thickness, bottom - y, color,
                esc("%s %s: %s %s" % (point.vm_name, point.created, what, human_bytes(value)))))
    body.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>' % (left, bottom, right, bottom, AXIS_COLOR))
    fmt, shown = _TimeAxis([p.moment for p in points], left, right).label_format, set()
    for number in sorted({0, len(points) // 2, len(points) - 1}):
        text = points[number].moment.strftime(fmt)
        if text not in shown:
            shown.add(text)
            body.append(_text(left + slot * number + slot / 2, bottom + 18, text, anchor="middle", size=11))
    return _svg("chart-bytes", height, label, body)


def ratio_lines(series):
    """The cumulative deduplication and compression ratios over time (RatioPoints); a dashed line marks 1x."""
    label = "Deduplication and compression ratio over time (cumulative)"
    moments = [parse_time(r.created) for r in series]
    if not series or any(m is None for m in moments):
        return _no_data("chart-ratios", label)
    top, bottom, left, right, height = 40, 230, 90, WIDTH - 24, 270
    maximum = _nice_ceiling(max(max(r.dedup, r.compression) for r in series) * 1.05)
    grid, y_of = _value_axis(top, bottom, left, right, maximum, lambda v: "%.2f\u00d7" % v if v < 10 else "%.0f\u00d7" % v)
    axis = _TimeAxis(moments, left + 12, right - 12)
    body = [_legend(left, 22, [(DEDUP_COLOR, "deduplication (read \u00f7 new)", "line"),
                               (COMPRESSION_COLOR, "compression (new \u00f7 stored)", "line")]), grid]
    one = y_of(1)
    body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="4 3"/>' % (left, one, right, one, AXIS_COLOR))
    for name, color in (("dedup", DEDUP_COLOR), ("compression", COMPRESSION_COLOR)):
        coordinates = [(axis.x(m), y_of(getattr(r, name))) for m, r in zip(moments, series)]
        body.append('<polyline class="ratio-%s" fill="none" stroke="%s" stroke-width="2.5" points="%s"/>' % (
            name, color, " ".join("%.1f,%.1f" % xy for xy in coordinates)))
        for (x, y), r in zip(coordinates, series):
            body.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s</title></circle>' % (
                x, y, color, esc("%s: %s %s" % (r.created, name, ratio_text(getattr(r, name))))))
    body.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>' % (left, bottom, right, bottom, AXIS_COLOR))
    body.append(axis.ticks(bottom))
    return _svg("chart-ratios", height, label, body)


def consumer_bars(vms, limit=10):
    """The VMs that take the most room (their restore points' stored bytes), largest first, ``limit`` at most."""
    label = "Largest consumers of space (stored bytes per VM)"
    shown = [vm for vm in vms if vm.bytes_stored > 0][:limit]
    if not shown:
        return _no_data("chart-consumers", label)
    row, top, left, right = 26, 16, 200, WIDTH - 110
    height = top + row * len(shown) + 12
    maximum = max(vm.bytes_stored for vm in shown)
    body = []
    for number, vm in enumerate(shown):
        y = top + row * number
        width = max(1.0, (right - left) * vm.bytes_stored / maximum)
        body.append(_text(left - 10, y + 14, _short(vm.name), anchor="end", color="#24292f"))
        body.append('<rect class="consumer" x="%d" y="%d" width="%.1f" height="18" fill="%s"><title>%s</title></rect>' % (
            left, y, width, STORED_COLOR, esc("%s: %s" % (vm.name, human_bytes(vm.bytes_stored)))))
        body.append(_text(left + width + 8, y + 14, human_bytes(vm.bytes_stored)))
    return _svg("chart-consumers", height, label, body)
