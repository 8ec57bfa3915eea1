"""The demo's QC pages in a real browser (headless Chromium): every section renders, every image
decodes with a non-zero size, nothing is fetched from outside the file, and the QC numbers shown
are those of group_qc.tsv. Screenshots go to test-artifacts/ (or $PIGMENT_TEST_ARTIFACTS)."""

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from pigment_connect.pipeline import run_demo
from pigment_connect.report import QC_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")

HARNESS = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="page" src="{url}" width="1280" height="4000"></iframe>
<script>
const frame = document.getElementById('page');
frame.addEventListener('load', () => {{
  const out = {{}};
  try {{
    const d = frame.contentDocument;
    out.title = d.title;
    out.sections = Array.from(d.querySelectorAll('section')).map(s => [s.id, s.innerText.trim().length]);
    out.images = Array.from(d.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]);
    out.resources = frame.contentWindow.performance.getEntriesByType('resource').map(e => e.name);
    const table = d.querySelector('section#series table');
    out.rows = table ? Array.from(table.querySelectorAll('tbody tr')).map(tr =>
      Object.fromEntries(Array.from(tr.cells).map(td => [td.dataset.column, td.innerText.trim()]))) : [];
  }} catch (e) {{ out.error = String(e); }}
  document.getElementById('result').textContent = JSON.stringify(out);
}});
</script></body></html>"""


def _open(page: Path, tmp_path: Path) -> dict:
    harness = tmp_path / f"harness_{page.stem}.html"
    harness.write_text(HARNESS.format(url=page.resolve().as_uri()))
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                             "--virtual-time-budget=20000", "--dump-dom", harness.as_uri()],
                            capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    text = found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    data = json.loads(text)
    assert "error" not in data, data["error"]
    return data


def _screenshot(page: Path, name: str) -> Path:
    folder = Path(os.environ.get("PIGMENT_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,3600", f"--screenshot={target}", page.resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    return target


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_report")
    run_demo(out, n_subjects=4, progress=False)
    return out / "derivatives" / "pigment_connect"


def test_the_cohort_page_renders_offline_with_the_numbers_of_group_qc(demo, tmp_path):
    page = demo / "report.html"
    assert page.is_file()
    data = _open(page, tmp_path)
    assert dict(data["sections"]).keys() == {"series", "graph"}
    assert all(length > 20 for _, length in data["sections"])
    assert data["images"] and all(ok and w > 0 and h > 0 for ok, w, h, _ in data["images"])
    assert data["resources"] == []  # nothing fetched: the images are data URIs, no scripts or styles outside
    qc = pd.read_csv(demo / "group_qc.tsv", sep="\t")
    assert [row["series"] for row in data["rows"]] == qc["series"].tolist()
    for row, (_, expected) in zip(data["rows"], qc.iterrows()):
        assert row["status"] == expected["status"]
        for column in QC_COLUMNS:
            shown, value = row[column], expected[column]
            if isinstance(value, float) and math.isnan(value):
                assert shown == "—", (column, shown)
            else:
                assert float(shown) == pytest.approx(float(value), rel=1e-3), (column, shown, value)
    html = page.read_text()
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # no remote resource or link at all
    assert _screenshot(page, "report_cohort.png").stat().st_size > 10_000


def test_a_series_page_renders_every_section(demo, tmp_path):
    page = demo / "sub-01" / "dwi" / "sub-01_report.html"
    data = _open(page, tmp_path)
    ids = [s for s, _ in data["sections"]]
    assert ids[:4] == ["summary", "input", "maps", "registration"] and ids[-1] == "run"
    assert any(s.startswith("tracking-") for s in ids) and any(s.startswith("connectome-") for s in ids)
    assert all(length > 20 for _, length in data["sections"])
    alts = [alt for *_, alt in data["images"]]
    for wanted in ("q-space", "brain mask", "FA mosaic", "colour-FA", "tract-density", "length", "stop reasons",
                   "connectome, nodes ordered by network", "degree and strength"):
        assert any(wanted in alt for alt in alts), (wanted, alts)
    assert all(ok and w > 0 and h > 0 for ok, w, h, _ in data["images"])
    assert data["resources"] == []
    assert _screenshot(page, "report_series.png").stat().st_size > 10_000
