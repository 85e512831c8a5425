"""docs/tour.ipynb runs from top to bottom, and its rendered page is laid out well in a real browser: headless
Chromium (Debian's package, which .ci/run installs) loads the HTML nbconvert makes, and a script in the page
reports every output wider than its cell and every image that did not load."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

TOUR = Path(__file__).parent.parent / "docs" / "tour.ipynb"

CHECK = """
<script>
window.addEventListener("load", () => {
  const wide = [];
  for (const area of document.querySelectorAll(".jp-OutputArea-output, .jp-RenderedHTMLCommon, pre")) {
    if (area.scrollWidth > area.clientWidth + 1) wide.push(area.textContent.trim().slice(0, 100));
  }
  const images = [...document.images];
  const broken = images.filter((image) => !image.complete || image.naturalWidth === 0).length;
  const result = document.createElement("pre");
  result.id = "floatfmt-check";
  result.textContent = JSON.stringify({wide, images: images.length, broken});
  document.body.appendChild(result);
});
</script>
"""
"""Run by the page itself once it has loaded (images included), leaving its findings in the DOM Chromium dumps."""


@pytest.fixture(scope="module")
def executed():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    notebook = nbformat.read(TOUR, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(TOUR.parent)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    return notebook


@pytest.mark.slow
def test_the_tour_runs_and_shows_every_answer(executed):
    outputs = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if o.output_type == "execute_result" and "text/html" in o["data"]]
    assert any("float8_e4m3fn" in view for view in html)  # 1. the code taken apart
    assert any("Quantization report" in view or "SQNR" in view for view in html)  # 2. the error of each scheme
    assert any("684,489,845,504" in view for view in html)  # 3. DeepSeek-R1's parameters
    assert any("FP8 e4m3 in 128×128 tiles" in view for view in html)  # ... in the storage it is published in
    assert any(o.output_type == "display_data" and "image/png" in o["data"] for o in outputs)  # the plot


def rendered_check(notebook, folder: Path) -> dict:
    """What the page's check finds in ``notebook`` rendered by nbconvert and loaded by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("FLOATFMT_REQUIRE_BROWSER"):
            pytest.fail("FLOATFMT_REQUIRE_BROWSER is set but there is no chromium on PATH")
        pytest.skip("no chromium on PATH (.ci/run installs Debian's package)")
    nbconvert = pytest.importorskip("nbconvert")
    page, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
    path = folder / "page.html"
    path.write_text(page.replace("</body>", CHECK + "</body>"))
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={folder / 'profile'}",
         "--window-size=1280,4000", "--virtual-time-budget=10000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    found = re.search(r'<pre id="floatfmt-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page's check did not run: {done.stderr[-2000:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    result: dict = json.loads(text)
    return result


@pytest.mark.slow
def test_the_rendered_tour_has_no_overflowing_output_and_every_plot(executed, tmp_path):
    result = rendered_check(executed, tmp_path)
    assert result["wide"] == [], "outputs wider than their cells"
    assert result["images"] >= 1 and result["broken"] == 0


@pytest.mark.slow
def test_the_browser_check_sees_an_output_wider_than_its_cell(tmp_path):
    # the check itself, on a page that does overflow: or it would prove nothing
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    wide = 'from IPython.display import HTML\nHTML("<table><tr>" + "<td>overflowing</td>" * 300 + "</tr></table>")'
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(wide)])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    result = rendered_check(notebook, tmp_path)
    assert len(result["wide"]) >= 1 and "overflowing" in result["wide"][0]
