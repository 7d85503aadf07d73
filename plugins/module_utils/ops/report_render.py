# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's files from its data (ops.report.ReportData): one self-contained HTML page (inline CSS, inline SVG
charts from ops._report_svg, no script, a Content-Security-Policy that would stop one), a JSON document and two CSV
tables (one row per restore point, one per disk of a restore point) for dashboards.

Every string from the repository (VM names are user input, so are notes) is escaped: html.escape in the page; in
the CSV tables a text cell that a spreadsheet would take for a formula (starting with = + - @, a tab or a carriage
return) is prefixed with a single quote. Output is deterministic: the same data gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json

from ._report_svg import bytes_bars, consumer_bars, esc, human_bytes, ratio_lines, ratio_text, timeline

__all__ = ["render_html", "render_json", "render_points_csv", "render_disks_csv", "point_document", "POINT_COLUMNS",
           "DISK_COLUMNS", "REPORT_FORMAT", "REPORT_VERSION"]

REPORT_FORMAT = "blockvault-report"
REPORT_VERSION = 1
POINT_COLUMNS = ("vm", "vm_key", "restore_point", "run_id", "created", "finished", "backup_mode", "disk_modes",
                 "transports", "bytes_read", "bytes_new", "bytes_stored", "logical_bytes", "dedup_ratio",
                 "compression_ratio", "duration_seconds", "quiesced", "validated", "validation_level", "pinned", "copied",
                 "note")
DISK_COLUMNS = ("vm", "vm_key", "restore_point", "created", "disk_key", "label", "capacity", "mode", "reason", "transport",
                "bytes_read", "bytes_new", "bytes_stored")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#24292f;margin:0;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:18px 20px}header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;color:#d0d7de}main{padding:8px 20px 28px;max-width:1400px}
h2{margin:28px 0 10px;font-size:19px}h3{margin:22px 0 6px;font-size:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#57606a;font-size:12px}
figure{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:0 0 16px;padding:12px;overflow-x:auto}
figcaption{color:#57606a;font-size:12px;margin-top:4px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.mode{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px}
.full{background:#1f6feb}.incremental{background:#2da44e}.auto{background:#bf8700}
.ok{color:#1a7f37;font-weight:600}.no{color:#57606a}.tag{border:1px solid #57606a;border-radius:4px;padding:0 4px;font-size:11px}
code{font-size:12px;word-break:break-all}.scroll{overflow-x:auto}.nowrap{white-space:nowrap}
td.disks{min-width:250px}td.when{min-width:150px}td.note{overflow-wrap:anywhere;min-width:80px}
ul.disks{margin:0;padding-left:16px}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px}
footer{color:#57606a;font-size:12px;padding:0 20px 28px}
"""


def _time(text):
    """A repository time as people read it: 2026-11-26 08:31:27 UTC."""
    return "-" if not text else "%s UTC" % str(text)[:19].replace("T", " ")


def _duration(seconds):
    if seconds is None:
        return "-"
    if seconds < 60:
        return "%.1f s" % seconds
    minutes, rest = divmod(int(round(seconds)), 60)
    return "%d min %02d s" % (minutes, rest) if minutes < 60 else "%d h %02d min" % divmod(minutes, 60)


def _describe(point):
    validated = ("validated %s (%s)" % (_time(point.validated.validated), point.validated.level or "level unknown")
                 if point.validated is not None else "not validated")
    return "%s %s: %s, read %s, stored %s, %s" % (
        point.vm_name, _time(point.created), point.backup_mode, human_bytes(point.bytes_read),
        human_bytes(point.bytes_stored), validated)


def _card(value, label):
    return '<div class="card"><b>%s</b><span>%s</span></div>' % (esc(value), esc(label))


def _disk_item(disk):
    transport = " via <b>%s</b>" % esc(disk.transport) if disk.transport else ""
    reason = ": %s" % esc(disk.reason) if disk.reason else ""
    return '<li data-disk="%s">%s <span class="mode %s">%s</span>%s%s</li>' % (
        esc(disk.key), esc(disk.label or "key %s" % disk.key), esc(disk.mode), esc(disk.mode), transport, reason)


def _point_row(point):
    if point.validated is not None:
        moment = _time(point.validated.validated)
        validated = '<span class="ok">passed</span> <small>(%s)</small><br><span class="nowrap">%s</span><br>%s' % (
            esc(point.validated.level or "level unknown"), esc(moment[:10]), esc(moment[11:]))
    else:
        validated = '<span class="no">not yet</span>'
    tags = "".join(' <span class="tag">%s</span>' % tag for tag, on in (("pinned", point.pinned), ("copy", point.copied)) if on)
    quiesced = {True: "yes", False: "no", None: "-"}[point.quiesced]
    cells = [
        "%s%s<br><code>%s</code>" % (esc(_time(point.created)), tags, esc(point.id)),
        '<span class="mode %s">%s</span><ul class="disks">%s</ul>' % (
            esc(point.backup_mode), esc(point.backup_mode), "".join(_disk_item(d) for d in point.disks)),
    ]
    # the figures as shown, each cell with its raw value (data-value: bytes, ratios, seconds; empty when unknown)
    figures = (("bytes_read", point.bytes_read, human_bytes(point.bytes_read)),
               ("bytes_new", point.bytes_new, human_bytes(point.bytes_new)),
               ("bytes_stored", point.bytes_stored, human_bytes(point.bytes_stored)),
               ("dedup_ratio", point.dedup_ratio, ratio_text(point.dedup_ratio)),
               ("compression_ratio", point.compression_ratio, ratio_text(point.compression_ratio)),
               ("duration", point.duration, _duration(point.duration)))
    cells.extend('<td class="n" data-field="%s" data-value="%s">%s</td>' % (field, "" if raw is None else raw, esc(text))
                 for field, raw, text in figures)
    return ('<tr data-restore-point="%s"><td class="when">%s</td><td class="disks">%s</td>%s<td>%s</td><td>%s</td>'
            '<td class="note">%s</td></tr>'
            % (esc(point.id), cells[0], cells[1], "".join(cells[2:]), esc(quiesced), validated, esc(point.note)))


def _vm_section(number, vm):
    head = ("<tr><th>created / id</th><th>mode and why, per disk (transport used)</th><th>read</th><th>new</th>"
            "<th>stored</th><th>dedup</th><th>compression</th><th>duration</th><th>quiesced</th><th>validation</th>"
            "<th>note</th></tr>")
    return ('<section class="vm" id="vm-%d" data-vm-key="%s"><h3>%s</h3><p>%d restore points, %d validated; '
            'stored %s, read %s. VM key <code>%s</code>.</p><div class="scroll"><table class="points"><thead>%s</thead>'
            '<tbody>%s</tbody></table></div></section>' % (
                number, esc(vm.key), esc(vm.name), len(vm.points), vm.validated_count, esc(human_bytes(vm.bytes_stored)),
                esc(human_bytes(vm.bytes_read)), esc(vm.key), head, "".join(_point_row(p) for p in reversed(vm.points))))


def _consumers_table(data):
    total = sum(vm.bytes_stored for vm in data.vms) or 1
    rows = "".join(
        '<tr data-vm-key="%s"><td><a href="#vm-%d">%s</a></td><td class="n">%d</td><td class="n">%s</td>'
        '<td class="n" data-field="bytes_stored" data-value="%d">%s</td><td class="n">%.1f %%</td><td>%s</td></tr>'
        % (esc(vm.key), data.vms.index(vm) + 1, esc(vm.name), len(vm.points), esc(_time(vm.points[-1].created)),
           vm.bytes_stored, esc(human_bytes(vm.bytes_stored)), 100.0 * vm.bytes_stored / total,
           "%d of %d" % (vm.validated_count, len(vm.points)))
        for vm in data.consumers)
    return ('<div class="scroll"><table id="consumers"><thead><tr><th>VM</th><th>restore points</th><th>newest</th><th>stored</th>'
            '<th>share</th><th>validated</th></tr></thead><tbody>%s</tbody></table></div>' % rows)


def render_html(data, file_names):
    """The report page of ReportData ``data``; ``file_names`` (ops.report.FILE_NAMES) are linked from its footer."""
    summary = data.summary()
    repository = data.repository
    ratios = data.ratio_series()
    last = ratios[-1] if ratios else None
    scope = "VM %s" % data.vm if data.vm else "every VM"
    cards = [_card(summary["vms"], "VMs"), _card(summary["restore_points"], "restore points"),
             _card(summary["validated_restore_points"], "validated (full or restore level)"),
             _card(human_bytes(summary["bytes_read"]), "read from the VMs"),
             _card(human_bytes(summary["bytes_stored"]), "stored by these restore points"),
             _card(ratio_text(last.dedup if last else None), "deduplication (read \u00f7 new)"),
             _card(ratio_text(last.compression if last else None), "compression (new \u00f7 stored)"),
             _card(human_bytes(summary["repository_bytes"]), "repository (%d chunks, every VM)" % summary["repository_chunks"])]
    warnings = "".join("<li>%s</li>" % esc(w) for w in data.warnings)
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; img-src data:">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title><style>%s</style></head><body>" % (esc(data.title), _CSS),
        "<header><h1>%s</h1><p>Repository <code>%s</code> (id %s, %s), %s. Data as of %s.</p></header><main>" % (
            esc(data.title), esc(repository.location), esc(repository.id),
            "encrypted" if repository.encrypted else "not encrypted", esc(scope), esc(_time(data.as_of))),
        '<section id="summary" class="cards">%s</section>' % "".join(cards),
        '<div class="warn" id="warnings"><b>Left out:</b><ul>%s</ul></div>' % warnings if warnings else "",
        '<h2>Charts</h2><section id="charts">',
        "<figure>%s<figcaption>Each dot is a restore point; a ring marks one that a full validation (or a test "
        "restore) found intact. Hover a dot for its figures.</figcaption></figure>" % timeline(data.vms, _describe),
        "<figure>%s<figcaption>What each backup read from the VM's disks and what it added to the repository, oldest "
        "first.</figcaption></figure>" % bytes_bars(data.points),
        "<figure>%s<figcaption>Cumulated over the restore points so far: read \u00f7 new (deduplication) and new "
        "\u00f7 stored (compression).</figcaption></figure>" % ratio_lines(ratios),
        "<figure>%s<figcaption>Stored bytes are what a VM's restore points added when written; a chunk shared by "
        "several VMs counts for the first.</figcaption></figure>" % consumer_bars(data.consumers),
        "</section><h2>Largest consumers of space</h2>", _consumers_table(data),
        '<h2>Restore points per VM</h2><section id="vms">',
        "".join(_vm_section(number, vm) for number, vm in enumerate(data.vms, 1)) or "<p>No restore point.</p>",
        "</section></main><footer>Written by blockvault.vsphere backup_report. The same data: %s. Chunk size %s, "
        "compression level %d.</footer></body></html>\n" % (
            ", ".join('<a href="%s">%s</a>' % (esc(name), esc(name)) for key, name in sorted(file_names.items())
                      if key != "html"), esc(human_bytes(repository.chunk_size)), repository.compression_level),
    ]
    return "".join(parts)


def point_document(point):
    """A restore point (PointRow) as the JSON document gives it."""
    validated = ({"at": point.validated.validated, "level": point.validated.level} if point.validated is not None else None)
    return {"id": point.id, "vm": point.vm_name, "vm_key": point.vm_key, "run_id": point.run_id, "created": point.created,
            "finished": point.finished, "backup_mode": point.backup_mode, "bytes_read": point.bytes_read,
            "bytes_new": point.bytes_new, "bytes_stored": point.bytes_stored, "logical_bytes": point.logical_bytes,
            "dedup_ratio": point.dedup_ratio, "compression_ratio": point.compression_ratio, "duration": point.duration,
            "quiesced": point.quiesced, "validated": validated, "pinned": point.pinned, "copied": point.copied,
            "note": point.note,
            "disks": [{"key": d.key, "label": d.label, "capacity": d.capacity, "mode": d.mode, "reason": d.reason,
                       "transport": d.transport, "bytes_read": d.bytes_read, "bytes_new": d.bytes_new,
                       "bytes_stored": d.bytes_stored} for d in point.disks]}


def render_json(data):
    """The report as a JSON document: format, version, title, as_of, repository, summary, vms (each with its
    restore points, oldest first), ratios (cumulative, per restore point) and warnings."""
    repository = data.repository
    document = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION, "title": data.title, "vm_filter": data.vm, "as_of": data.as_of,
        "repository": {"location": repository.location, "id": repository.id, "chunk_size": repository.chunk_size,
                       "encrypted": repository.encrypted, "compression_level": repository.compression_level,
                       "chunks": repository.chunks, "stored_bytes": repository.stored_bytes},
        "summary": data.summary(),
        "vms": [{"name": vm.name, "key": vm.key, "bytes_read": vm.bytes_read, "bytes_stored": vm.bytes_stored,
                 "restore_points": [point_document(p) for p in vm.points]} for vm in data.vms],
        "ratios": [{"created": r.created, "dedup": r.dedup, "compression": r.compression} for r in data.ratio_series()],
        "warnings": list(data.warnings),
    }
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _cell(value):
    """A CSV cell: numbers as written, None empty, booleans true/false, text guarded against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv(columns, rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in columns])
    return out.getvalue()


def render_points_csv(data):
    """One row per restore point (POINT_COLUMNS), oldest first; per-disk modes and transports as key:value;..."""
    rows = []
    for point in data.points:
        document = point_document(point)
        validated = document["validated"] or {}
        rows.append(dict(document, vm=point.vm_name, restore_point=point.id,
                         disk_modes=";".join("%s:%s" % (d.key, d.mode) for d in point.disks),
                         transports=";".join("%s:%s" % (d.key, d.transport or "") for d in point.disks),
                         duration_seconds=point.duration, validated=validated.get("at"),
                         validation_level=validated.get("level")))
    return _csv(POINT_COLUMNS, rows)


def render_disks_csv(data):
    """One row per disk of each restore point (DISK_COLUMNS), oldest restore point first."""
    rows = [{"vm": point.vm_name, "vm_key": point.vm_key, "restore_point": point.id, "created": point.created,
             "disk_key": d.key, "label": d.label, "capacity": d.capacity, "mode": d.mode, "reason": d.reason,
             "transport": d.transport, "bytes_read": d.bytes_read, "bytes_new": d.bytes_new, "bytes_stored": d.bytes_stored}
            for point in data.points for d in point.disks]
    return _csv(DISK_COLUMNS, rows)
