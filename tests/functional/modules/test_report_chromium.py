"""backup_report's page as a browser shows it: Debian's chromium (installed by `make install`), headless, offline.

The module writes the report of a repository whose VMs include one with a hostile name (report_fixtures); chromium
loads the file once to dump its DOM and once to take a 1280x2000 screenshot. The DOM must hold the four SVG charts
with their shapes, one row per restore point and every VM's name as text (the hostile one as text, never as markup);
chromium must log no console message at all (the page has no script, so any is an error: a CSP violation, a script
that got in); the screenshot must be a valid PNG (signature, CRCs, size; decoded here with zlib) that is not blank and
shows the charts' colours. Two controls show that these checks can fail: a page whose script logs and throws is
caught by the console check, and a blank page is judged blank.
"""
import collections
import html.parser
import itertools
import operator
import os
import shutil
import struct
import subprocess
import zlib

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _report_svg as svg
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import crypto
from ansible_collections.blockvault.vsphere.plugins.modules import backup_report
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.ops.report_fixtures import (
    HOSTILE_NAME, VMS, build_report_repository)
from modrun import run

WIDTH, HEIGHT = 1280, 2000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHARTS = ["chart-timeline", "chart-bytes", "chart-ratios", "chart-consumers"]


def _rgb(color):
    return bytes(int(color[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: `make install` installs Debian's chromium package", pytrace=False)
    return path


class Browser:
    """Headless chromium runs with a profile of their own, nothing reached over the network, console to stderr."""

    def __init__(self, binary, tmp_path):
        self.binary = binary
        self.tmp_path = tmp_path

    def run(self, page, *args):
        """(stdout, console messages) of chromium on the file ``page``; fails the test when chromium fails."""
        command = [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--user-data-dir=%s" % (self.tmp_path / "chromium-profile"), "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-default-apps", "--enable-logging=stderr", "--v=0", "--log-level=0", *args,
                   "file://%s" % page]
        env = dict(os.environ, HOME=str(self.tmp_path))
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
        assert done.returncode == 0, "chromium failed (%d):\n%s" % (done.returncode, done.stderr[-3000:])
        console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
        return done.stdout, console

    def dom(self, page):
        return self.run(page, "--dump-dom")

    def screenshot(self, page):
        shot = self.tmp_path / ("%s.png" % os.path.basename(page))
        _stdout, console = self.run(page, "--screenshot=%s" % shot, "--window-size=%d,%d" % (WIDTH, HEIGHT),
                                    "--hide-scrollbars")
        return shot.read_bytes(), console


@pytest.fixture
def browser(chromium, tmp_path):
    return Browser(chromium, tmp_path)


class Dom(html.parser.HTMLParser):
    """What the dumped DOM holds: elements (tag, attributes, the ids of their enclosing svg and tr) and texts."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements, self.texts, self._svg, self._row, self._h3 = [], [], None, None, False
        self.headings = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self._svg = attrs.get("id")
        if tag == "tr":
            self._row = attrs.get("data-restore-point")
        self._h3 = tag == "h3"
        self.elements.append((tag, attrs, self._svg, self._row))

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg = None
        if tag == "h3":
            self._h3 = False

    def handle_data(self, data):
        self.texts.append(data)
        if self._h3:
            self.headings.append(data)

    def count(self, tag, chart):
        return sum(1 for t, _a, s, _r in self.elements if t == tag and s == chart)


# -- PNG, decoded with zlib ---------------------------------------------------------------------------------------

def _unfilter(kind, line, prior, bpp):
    """One scanline without its PNG filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth); the first three in C loops."""
    if kind == 0:
        return bytes(line)
    if kind == 2:
        return bytes(map(operator.and_, map(operator.add, line, prior), itertools.repeat(255)))
    if kind == 1:
        out = bytearray(len(line))
        for channel in range(bpp):
            out[channel::bpp] = bytes(map(operator.and_, itertools.accumulate(line[channel::bpp]), itertools.repeat(255)))
        return bytes(out)
    assert kind in (3, 4), "PNG filter type %d" % kind
    out = bytearray(line)
    for i, value in enumerate(out):
        left = out[i - bpp] if i >= bpp else 0
        up = prior[i]
        if kind == 3:
            out[i] = (value + ((left + up) >> 1)) & 255
            continue
        upper_left = prior[i - bpp] if i >= bpp else 0
        estimate = left + up - upper_left
        pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
        out[i] = (value + (left if pa <= pb and pa <= pc else up if pb <= pc else upper_left)) & 255
    return bytes(out)


def decode_png(data):
    """(width, height, Counter of RGB pixel -> count) of a non-interlaced 8-bit RGB or RGBA PNG; every chunk's CRC
    checked, IHDR first and IEND last."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    position, kinds, idat, header = 8, [], [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        assert zlib.crc32(kind + body) == crc, "bad CRC in chunk %r" % kind
        kinds.append(kind)
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and position == len(data)
    width, height, depth, color, _compression, _filter, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = 1 + width * bpp
    assert len(raw) == height * stride
    pixels, prior = collections.Counter(), bytes(width * bpp)
    for y in range(height):
        prior = _unfilter(raw[y * stride], raw[y * stride + 1:(y + 1) * stride], prior, bpp)
        pixels.update(prior[x:x + 3] for x in range(0, len(prior), bpp))
    return width, height, pixels


def is_blank(pixels):
    """True when one colour covers all but 1 % of the image, or it has fewer than 16 colours."""
    total = sum(pixels.values())
    return pixels.most_common(1)[0][1] > 0.99 * total or len(pixels) < 16


# -- the controls: the checks below can fail ----------------------------------------------------------------------

def test_the_console_check_sees_script_errors(browser, tmp_path):
    page = tmp_path / "errors.html"
    page.write_text('<!DOCTYPE html><html><body><p>control</p><script>console.error("control-error");'
                    "notDefinedAnywhere();</script></body></html>")
    _dom, console = browser.dom(page)
    assert any("control-error" in line for line in console), console
    assert any("notDefinedAnywhere" in line for line in console), console


def test_a_blank_page_is_judged_blank(browser, tmp_path):
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    shot, console = browser.screenshot(page)
    width, height, pixels = decode_png(shot)
    assert (width, height) == (WIDTH, HEIGHT) and console == []
    assert is_blank(pixels)


# -- the report ---------------------------------------------------------------------------------------------------

@pytest.fixture
def report(tmp_path, monkeypatch):
    """The module's result for the fixture repository, and the manifests {vm key: [Manifest]}."""
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
    settings, manifests = build_report_repository(tmp_path / "repo")
    result = run(backup_report, {"repository": settings.location, "passphrase": settings.passphrase,
                                 "dest": str(tmp_path / "report"), "title": "Report <of> the lab"})
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["summary"]["restore_points"] == 6
    return result, manifests


def test_chromium_renders_the_charts_and_every_restore_point(browser, report):
    result, manifests = report
    text, console = browser.dom(result["files"]["html"])
    assert console == [], "chromium logged console messages:\n%s" % "\n".join(console)
    dom = Dom(text)
    assert [attrs.get("id") for tag, attrs, _s, _r in dom.elements if tag == "svg"] == CHARTS
    # the shapes each chart draws for these six restore points of three VMs
    restore_points = sum(len(points) for _key, _name, points in VMS)
    assert sum(1 for t, a, s, _r in dom.elements if t == "g" and a.get("class") == "restore-point" and s == CHARTS[0]) == restore_points
    assert dom.count("rect", "chart-bytes") >= 2 * restore_points
    assert sum(1 for t, a, s, _r in dom.elements if t == "polyline" and s == "chart-ratios") == 2
    assert sum(1 for t, a, s, _r in dom.elements if t == "rect" and a.get("class") == "consumer") == len(VMS)
    rows = [attrs["data-restore-point"] for tag, attrs, _s, _r in dom.elements if tag == "tr" and "data-restore-point" in attrs]
    assert sorted(rows) == sorted(m.id for points in manifests.values() for m in points)
    # every VM has its section, named as text; the hostile name stayed text: no element came out of it
    assert sorted(dom.headings) == sorted(name for _key, name, _points in VMS)
    assert HOSTILE_NAME in dom.texts and "Report <of> the lab" in "".join(dom.texts)
    assert not [tag for tag, _a, _s, _r in dom.elements if tag in ("script", "img", "i", "iframe")]
    assert not [attrs for _t, attrs, _s, _r in dom.elements if any(name.startswith("on") for name in attrs)]


def test_the_screenshot_is_a_png_that_shows_the_report(browser, report):
    result, _manifests = report
    shot, console = browser.screenshot(result["files"]["html"])
    assert console == [], "chromium logged console messages:\n%s" % "\n".join(console)
    width, height, pixels = decode_png(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    assert not is_blank(pixels) and len(pixels) > 200
    # the charts were drawn: solid areas of the bars and dots in the colours the report gives them
    assert pixels[_rgb(svg.STORED_COLOR)] > 2000 and pixels[_rgb(svg.READ_COLOR)] > 1000
    assert pixels[_rgb(svg.MODE_COLORS["full"])] > 100 and pixels[_rgb(svg.MODE_COLORS["incremental"])] > 100
    # the page's dark header band is there too
    assert pixels[_rgb("#24292f")] > WIDTH * 40
