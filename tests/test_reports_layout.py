"""The HTML report as Chromium lays it out at 1400 px: nothing cut off, matrix rows of one height.

Skipped where Debian's ``chromium`` is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_llmchallenges.report_html import to_html

FIXTURES = Path(__file__).parent / "report_fixtures"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MEASURE = """<script>
const m = document.querySelector('table.matrix');
const rows = [...m.querySelectorAll('tr')].slice(1).map(r => Math.round(r.getBoundingClientRect().height));
const cells = [...m.querySelectorAll('td.c')].map(c => Math.round(c.getBoundingClientRect().height));
document.title = JSON.stringify({page: document.documentElement.scrollWidth, right: m.getBoundingClientRect().right,
  rows: rows, cells: cells});
</script></body>"""


def layout(data: dict[str, Any], tmp: Path, width: int = 1400) -> dict[str, Any]:
    page = tmp / "report.html"
    page.write_text(to_html(data).replace("</body>", MEASURE))
    cmd = [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    cmd += [f"--window-size={width},900", "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r"<title>(.*?)</title>", out, flags=re.S)
    assert found, out[-2000:]
    return json.loads(html.unescape(found.group(1)))


def big_bench() -> dict[str, Any]:
    """The mixed fixture with ten models, long names among them."""
    data = json.loads((FIXTURES / "mixed.json").read_text())
    subs = data["submissions"]
    for i in range(6):
        extra = copy.deepcopy(subs[i % len(subs)])
        extra["name"] = f"vendor-model-{i}-instruct-2026-12-preview-with-a-long-tag"
        subs.append(extra)
    return data


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install -y chromium")
def test_fits_1400_px_and_rows_keep_one_height(tmp_path: Path) -> None:
    got = layout(big_bench(), tmp_path)
    assert got["page"] <= 1400 and got["right"] <= 1400, got
    assert len(set(got["rows"])) == 1, f"matrix rows of different heights (a wrapped cell): {got['rows']}"
    assert len(set(got["cells"])) == 1
