"""ops.report and its renderers: the data equals the manifests', every repository string is escaped, and the files are
written atomically and only when they differ (a rerun on an unchanged repository writes nothing)."""
import csv
import dataclasses
import html
import html.parser
import io
import json
import os
import stat

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _report_svg as svg
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import report as ops_report
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import report_render
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops._engine import open_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import RepositorySettings, crypto, open_backend
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.ops.report_fixtures import (
    HOSTILE_NAME, HOSTILE_NOTE, VMS, build_report_repository)
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import PASSPHRASE, make_repo

FILES = ("report.html", "report.json", "restore_points.csv", "disks.csv")


@pytest.fixture
def reported(tmp_path, monkeypatch):
    """(RepositorySettings, {vm key: [Manifest]}) of the fixture repository."""
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
    return build_report_repository(tmp_path / "repo")


def _data(settings, vm=None):
    repository = open_repository(settings)
    try:
        return ops_report.gather(repository, vm=vm, title="Nightly <report>")
    finally:
        repository.close()


def _write(settings, dest, check=False, vm=None):
    return ops_report.write_report(ops_report.ReportRequest(dest=str(dest), vm=vm, title="Nightly <report>"), settings, check=check)


class _Elements(html.parser.HTMLParser):
    """The elements of a page: (tag, attributes) in document order, and its text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _row_figures(parsed):
    """{restore point id: {field: raw value}} of the rows of the restore point tables."""
    figures, current = {}, None
    for tag, attrs in parsed.elements:
        if tag == "tr":
            current = attrs.get("data-restore-point")
            if current:
                figures[current] = {}
        elif tag == "td" and current and "data-field" in attrs:
            figures[current][attrs["data-field"]] = attrs["data-value"]
    return figures


def _parse(page):
    parser = _Elements()
    parser.feed(page)
    return parser


# -- the data -----------------------------------------------------------------------------------------------------

def test_rows_carry_the_manifests_figures(reported):
    settings, manifests = reported
    data = _data(settings)
    assert [vm.name for vm in data.vms] == sorted(name for _key, name, _points in VMS)
    for vm in data.vms:
        expected = manifests[vm.key]
        assert [p.id for p in vm.points] == [m.id for m in expected]
        for point, manifest in zip(vm.points, expected):
            assert point.bytes_read == manifest.stats["bytes_read"] and point.bytes_stored == manifest.stats["bytes_written"]
            assert point.duration == manifest.stats["duration"] and point.backup_mode == manifest.backup_mode
            assert point.quiesced == manifest.stats.get("quiesced")
            assert point.created == manifest.created and point.finished == manifest.finished
            for disk, entry in zip(point.disks, manifest.disks):
                assert (disk.key, disk.mode, disk.reason, disk.transport, disk.bytes_read) == (
                    entry.key.value, entry.mode, entry.reason, entry.transport, entry.bytes_read)
                if entry.bytes_stored is None:         # written before bytes_stored: bytes_new held the stored size
                    assert disk.bytes_new is None and disk.bytes_stored == entry.bytes_new
                else:
                    assert (disk.bytes_new, disk.bytes_stored) == (entry.bytes_new, entry.bytes_stored)
    web = manifests["vm-web01"]
    assert [m.backup_mode for m in web] == ["full", "incremental", "auto"]
    summary = data.summary()
    everything = [m for ms in manifests.values() for m in ms]
    assert summary["restore_points"] == 6 and summary["vms"] == 3 and summary["validated_restore_points"] == 3
    assert summary["bytes_read"] == sum(m.stats["bytes_read"] for m in everything)
    assert summary["bytes_stored"] == sum(m.stats["bytes_written"] for m in everything)
    assert summary["logical_bytes"] == sum(d.capacity for m in everything for d in m.disks)
    assert summary["repository_chunks"] == 6 and summary["repository_bytes"] > 0


def test_validations_pins_notes_and_ratios(reported):
    settings, manifests = reported
    data = _data(settings)
    points = {p.id: p for p in data.points}
    web, hostile, db = manifests["vm-web01"], manifests["vm-hostile"], manifests["vm-db01"]
    assert {rp_id: p.validated.level for rp_id, p in points.items() if p.validated} == {
        web[0].id: "full", web[2].id: "restore", hostile[0].id: "full"}
    assert all(p.validated.validated >= p.finished for p in points.values() if p.validated)
    assert [rp_id for rp_id, p in points.items() if p.pinned] == [web[1].id]
    assert points[hostile[0].id].note == HOSTILE_NOTE
    # web01's first: read 8 MiB, new 6 + 2 MiB, stored 2 + 1 MiB
    assert points[web[0].id].dedup_ratio == 1.0 and points[web[0].id].compression_ratio == round(8 / 3, 4)
    assert points[web[1].id].dedup_ratio == 2.0 and points[web[1].id].compression_ratio == 2.0
    assert points[db[0].id].bytes_new is None and points[db[0].id].dedup_ratio is None
    assert points[db[0].id].compression_ratio is None
    # cumulative over the restore points that record new bytes (db01's does not), oldest first
    read = new = stored = 0
    expected = []
    for point in data.points:
        if point.bytes_new is None:
            continue
        read, new, stored = read + point.bytes_read, new + point.bytes_new, stored + sum(d.bytes_stored for d in point.disks)
        expected.append((point.created, round(read / new, 4), round(new / stored, 4)))
    assert [(r.created, r.dedup, r.compression) for r in data.ratio_series()] == expected and len(expected) == 5
    newest = max([p.finished for p in points.values()] + [p.validated.validated for p in points.values() if p.validated])
    assert data.as_of == newest


def test_largest_consumers_first(reported):
    settings, _manifests = reported
    data = _data(settings)
    assert [(vm.name, vm.bytes_stored) for vm in data.consumers] == [
        ("db01", 5 << 20), ("web01", (3 << 20) + (1 << 19) + (1 << 20)), (HOSTILE_NAME, (2 << 20) + (1 << 18))]


def test_a_vm_filter_and_a_vm_without_restore_points(reported):
    settings, manifests = reported
    data = _data(settings, vm="web01")
    assert [vm.name for vm in data.vms] == ["web01"] and [p.id for p in data.points] == [m.id for m in manifests["vm-web01"]]
    with pytest.raises(errors.ConfigurationError, match="No restore point of VM nope"):
        _data(settings, vm="nope")


def test_a_damaged_manifest_is_left_out_with_a_warning(reported, tmp_path):
    settings, manifests = reported
    damaged = manifests["vm-db01"][0].id
    with open(tmp_path / "repo" / "manifests" / damaged, "r+b") as manifest:
        manifest.seek(40)
        manifest.write(b"\xff\xff")
    result = _write(settings, tmp_path / "out")
    assert result["summary"]["restore_points"] == 5 and result["summary"]["vms"] == 2
    assert len(result["warnings"]) == 1 and damaged in result["warnings"][0]
    page = (tmp_path / "out" / "report.html").read_text()
    assert damaged in page and 'id="warnings"' in page


# -- the files ----------------------------------------------------------------------------------------------------

def test_hostile_strings_are_escaped_in_the_page(reported):
    settings, _manifests = reported
    page = report_render.render_html(_data(settings), ops_report.FILE_NAMES)
    assert HOSTILE_NAME not in page and HOSTILE_NOTE not in page and "<script" not in page.lower()
    assert html.escape(HOSTILE_NAME, quote=True) in page and html.escape(HOSTILE_NOTE, quote=True) in page
    parsed = _parse(page)
    # none of the markup of the name or the note became an element or an attribute
    assert not {tag for tag, _attrs in parsed.elements} & {"script", "img", "i", "iframe", "object"}
    assert not [attrs for _tag, attrs in parsed.elements if any(name.startswith("on") or name == "src" for name in attrs)]
    assert all(attrs == {} for tag, attrs in parsed.elements if tag == "b")       # the page's own <b>, never the name's
    text = "".join(parsed.text)
    assert HOSTILE_NAME in text and HOSTILE_NOTE in text and "Nightly <report>" in text


def test_the_page_has_the_charts_and_one_row_per_restore_point_with_the_manifests_bytes(reported):
    settings, manifests = reported
    page = report_render.render_html(_data(settings), ops_report.FILE_NAMES)
    parsed = _parse(page)
    charts = [attrs["id"] for tag, attrs in parsed.elements if tag == "svg"]
    assert charts == ["chart-timeline", "chart-bytes", "chart-ratios", "chart-consumers"]
    assert sum(1 for tag, attrs in parsed.elements if tag == "g" and attrs.get("class") == "restore-point") == 6
    rows = [attrs["data-restore-point"] for tag, attrs in parsed.elements if tag == "tr" and "data-restore-point" in attrs]
    assert sorted(rows) == sorted(m.id for ms in manifests.values() for m in ms)
    # the raw figures of each row equal the manifest's
    by_id = {m.id: m for ms in manifests.values() for m in ms}
    figures = _row_figures(parsed)
    assert sorted(figures) == sorted(by_id)
    for rp_id, shown in figures.items():
        manifest = by_id[rp_id]
        assert shown["bytes_read"] == str(manifest.stats["bytes_read"])
        assert shown["bytes_stored"] == str(manifest.stats["bytes_written"])
        assert float(shown["duration"]) == manifest.stats["duration"]
        if all(d.bytes_stored is not None for d in manifest.disks):
            assert shown["bytes_new"] == str(sum(d.bytes_new for d in manifest.disks))
            assert float(shown["compression_ratio"]) == round(
                sum(d.bytes_new for d in manifest.disks) / sum(d.bytes_stored for d in manifest.disks), 4)
        else:
            assert shown["bytes_new"] == "" and shown["dedup_ratio"] == "" and shown["compression_ratio"] == ""
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    assert "http://" not in page.replace(html.escape(HOSTILE_NOTE, quote=True), "").replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_csv_rows_equal_the_manifests(reported):
    settings, manifests = reported
    data = _data(settings)
    rows = list(csv.DictReader(io.StringIO(report_render.render_points_csv(data))))
    assert tuple(rows[0]) == report_render.POINT_COLUMNS
    by_id = {m.id: m for ms in manifests.values() for m in ms}
    assert sorted(row["restore_point"] for row in rows) == sorted(by_id)
    for row in rows:
        manifest = by_id[row["restore_point"]]
        assert int(row["bytes_read"]) == manifest.stats["bytes_read"]
        assert int(row["bytes_stored"]) == manifest.stats["bytes_written"]
        assert float(row["duration_seconds"]) == manifest.stats["duration"]
        assert row["backup_mode"] == manifest.backup_mode and row["created"] == manifest.created
        assert row["transports"] == ";".join("%s:%s" % (d.key, d.transport or "") for d in manifest.disks)
        assert row["disk_modes"] == ";".join("%s:%s" % (d.key, d.mode) for d in manifest.disks)
        assert row["logical_bytes"] == str(sum(d.capacity for d in manifest.disks))
    hostile = [row for row in rows if row["vm_key"] == "vm-hostile"]
    assert {row["vm"] for row in hostile} == {HOSTILE_NAME}       # starts with "<": no formula, unchanged
    assert [row["note"] for row in hostile if row["note"]] == ["'" + HOSTILE_NOTE]      # "=...": made inert
    old = [row for row in rows if row["vm"] == "db01"][0]
    assert old["bytes_new"] == "" and old["dedup_ratio"] == "" and old["validated"] == ""
    disks = list(csv.DictReader(io.StringIO(report_render.render_disks_csv(data))))
    assert len(disks) == sum(len(m.disks) for m in by_id.values())
    for row in disks:
        entry = by_id[row["restore_point"]].disk(row["disk_key"])
        assert (row["mode"], row["reason"], row["transport"], int(row["bytes_read"]), int(row["capacity"])) == (
            entry.mode, entry.reason, entry.transport or "", entry.bytes_read, entry.capacity)


def test_the_json_document(reported):
    settings, manifests = reported
    document = json.loads(report_render.render_json(_data(settings)))
    assert document["format"] == "blockvault-report" and document["version"] == 1 and document["title"] == "Nightly <report>"
    by_id = {m.id: m for ms in manifests.values() for m in ms}
    listed = {p["id"]: p for vm in document["vms"] for p in vm["restore_points"]}
    assert sorted(listed) == sorted(by_id)
    for rp_id, point in listed.items():
        manifest = by_id[rp_id]
        assert (point["bytes_read"], point["bytes_stored"], point["quiesced"]) == (
            manifest.stats["bytes_read"], manifest.stats["bytes_written"], manifest.stats.get("quiesced"))
        assert [d["transport"] for d in point["disks"]] == [d.transport for d in manifest.disks]
    assert document["summary"]["restore_points"] == 6 and len(document["ratios"]) == 5


# -- writing ------------------------------------------------------------------------------------------------------

def test_written_once_then_unchanged_check_mode_writes_nothing(reported, tmp_path):
    settings, _manifests = reported
    dest = tmp_path / "reports" / "nightly"
    planned = _write(settings, dest, check=True)
    assert planned["changed"] is True and planned["updated"] == [str(dest / name) for name in FILES]
    assert not dest.exists()
    written = _write(settings, dest)
    assert written["changed"] is True and written["updated"] == planned["updated"]
    assert written["files"] == {"html": str(dest / "report.html"), "json": str(dest / "report.json"),
                                "restore_points_csv": str(dest / "restore_points.csv"), "disks_csv": str(dest / "disks.csv")}
    assert written["summary"] == planned["summary"]
    for name in FILES:
        assert stat.S_IMODE(os.stat(dest / name).st_mode) == 0o600
    assert sorted(os.listdir(dest)) == sorted(FILES)          # no temporary file left
    before = {name: (dest / name).read_bytes() for name in FILES}
    again = _write(settings, dest)
    assert again["changed"] is False and again["updated"] == [] and "unchanged" in again["msg"]
    assert _write(settings, dest, check=True)["changed"] is False
    assert {name: (dest / name).read_bytes() for name in FILES} == before


def test_only_the_files_that_differ_are_written_and_keep_their_mode(reported, tmp_path):
    settings, _manifests = reported
    dest = tmp_path / "out"
    _write(settings, dest)
    os.chmod(dest / "report.html", 0o644)
    (dest / "report.html").write_text("edited by hand")
    checked = _write(settings, dest, check=True)
    assert checked["updated"] == [str(dest / "report.html")] and (dest / "report.html").read_text() == "edited by hand"
    done = _write(settings, dest)
    assert done["changed"] is True and done["updated"] == [str(dest / "report.html")]
    assert stat.S_IMODE(os.stat(dest / "report.html").st_mode) == 0o644
    assert "edited by hand" not in (dest / "report.html").read_text()


def test_a_new_validation_changes_the_report(reported, tmp_path):
    settings, manifests = reported
    dest = tmp_path / "out"
    first = _write(settings, dest)
    repository = open_repository(settings)
    try:
        repository.record_validated(manifests["vm-db01"][0].id, "full")
    finally:
        repository.close()
    second = _write(settings, dest)
    assert second["changed"] is True and second["summary"]["validated_restore_points"] == 4
    assert second["summary"]["as_of"] > first["summary"]["as_of"]
    row = [r for r in csv.DictReader(io.StringIO((dest / "restore_points.csv").read_text())) if r["vm"] == "db01"][0]
    assert row["validation_level"] == "full" and row["validated"] == second["summary"]["as_of"]


def test_dest_that_is_a_file_and_bad_requests_are_refused(reported, tmp_path):
    settings, _manifests = reported
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.ConfigurationError, match="is not a directory"):
        _write(settings, tmp_path / "file")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").mkdir()
    with pytest.raises(errors.ConfigurationError, match="is not a regular file"):
        _write(settings, tmp_path / "out")
    with pytest.raises(errors.ConfigurationError, match="dest is empty"):
        ops_report.ReportRequest(dest="")
    with pytest.raises(errors.ConfigurationError, match="title must be"):
        ops_report.ReportRequest(dest="/tmp/x", title="x" * 201)


def test_an_empty_repository_gives_a_report_without_restore_points(tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
    make_repo(open_backend(str(tmp_path / "repo"))).close()
    result = _write(RepositorySettings(location=str(tmp_path / "repo"), passphrase=PASSPHRASE), tmp_path / "out")
    assert result["summary"]["restore_points"] == 0 and result["summary"]["as_of"] is None
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("no restore point to show") == 4 and "No restore point." in page


# -- chart helpers ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count, text", [(0, "0 B"), (512, "512 B"), (1536, "1.50 KiB"), (20 << 20, "20.0 MiB"),
                                         (300 << 30, "300 GiB"), (None, "-")])
def test_human_bytes(count, text):
    assert svg.human_bytes(count) == text


@pytest.mark.parametrize("value, ceiling", [(0, 1), (1000, 1000), (4_999_000, 5 << 20), (19 << 20, 20 << 20),
                                            (3 << 30, 4 << 30), (1100, 2048)])
def test_axis_maxima_are_round_in_binary_units(value, ceiling):
    assert svg._nice_bytes(value) == ceiling  # pylint: disable=protected-access


def test_times_parse_with_or_without_a_fraction():
    assert svg.parse_time("2026-11-26T08:31:27Z").isoformat() == "2026-11-26T08:31:27+00:00"
    assert svg.parse_time("2026-11-26T08:31:27.5Z").microsecond == 500000
    assert svg.parse_time("2026-13-26T08:31:27Z") is None and svg.parse_time(None) is None


def test_a_validation_record_whose_body_does_not_read_gives_its_modification_time(reported, tmp_path):
    settings, manifests = reported
    rp_id = manifests["vm-web01"][0].id
    record = tmp_path / "repo" / "validated" / rp_id
    record.write_bytes(b"\x00not json")
    os.utime(record, (1795000000, 1795000000))
    (tmp_path / "repo" / "validated" / "not-a-restore-point-id").write_text("{}")
    repository = open_repository(settings)
    try:
        records = repository.validation_records()
    finally:
        repository.close()
    assert records[rp_id].validated == "2026-11-18T11:06:40.000000Z" and records[rp_id].level is None
    assert "not-a-restore-point-id" not in records and len(records) == 3
    point = [p for p in _data(settings).points if p.id == rp_id][0]
    assert point.validated == records[rp_id]
    assert "level unknown" in report_render.render_html(_data(settings), ops_report.FILE_NAMES)


def test_the_timeline_draws_at_most_its_lanes_and_says_how_many_more(reported):
    settings, _manifests = reported
    vms = _data(settings).vms
    drawn = svg.timeline(vms, lambda point: point.id, max_lanes=2)
    parsed = _parse(drawn)
    assert sum(1 for tag, attrs in parsed.elements if tag == "text" and attrs.get("class") == "lane") == 2
    assert "and 1 more VMs: see the tables below" in drawn
    assert "more VMs" not in svg.timeline(vms, lambda point: point.id)


def test_a_duration_that_is_no_finite_number_is_not_shown(reported):
    settings, manifests = reported
    manifest = manifests["vm-web01"][0]
    for odd in (float("inf"), float("nan"), -1, True, "12"):
        bent = dataclasses.replace(manifest, stats=dict(manifest.stats, duration=odd))
        assert ops_report.PointRow.of(bent).duration is None
