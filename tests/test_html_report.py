"""report.html: one self-contained page whose text from a sheet or a model is only ever text; then the
example workbook's page opened in headless Chromium (skipped where no Chromium is installed)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from report_pipeline.models import CallRecord, CallText, Chapter, Objective, ReportView, TaskResult
from report_pipeline.writers.html_out import render_html
from tests.test_cli import EXAMPLE, invoke, run_dirs

T0 = 1_714_564_800.0
HOSTILE = '<script>alert("x")</script> <img src=x onerror=alert(1)> {{ config.api_key }}'


def _report() -> ReportView:
    first = Objective("o1", 'Prices <b>&</b> "costs"', lead="Lead with <i>tags</i>.")
    second = Objective("o2", "Risks")
    done = TaskResult("o1", "t1", "Outlook", "done", text=f"# Heading\n\nA paragraph. {HOSTILE}\n\n| a | b |\n| - | - |\n| 1 | 2 |",
                      model="sim-small", steps=("generate", "check"), started_at=T0, finished_at=T0 + 2,
                      calls=(CallRecord("generate", "sim-small", 100, 50, 0.01), CallRecord("check", "sim-small", 10, 5)),
                      check_verdict="pass", check_notes="fine")
    failed = TaskResult("o2", "t1", "Broken", "failed", error=f"HTTP 400: {HOSTILE}", started_at=T0, finished_at=T0)
    return ReportView("Energy <Outlook>", "20240501-120000-abcd", T0, "openai", "sim-small", (
        Chapter(first, (done,), 1, lead=first.lead), Chapter(second, (failed,), 2)))


def test_text_from_a_sheet_or_a_model_is_shown_as_text_never_run() -> None:
    calls = {"o1.t1": [CallText("generate", "sim-small", f"[user]\n{HOSTILE}", f"answer {HOSTILE}", False)]}
    page = render_html(_report(), calls=calls)
    assert "<script" not in page and "onerror=" not in page.replace("onerror=alert(1)&gt;", "")
    assert page.count(html.escape('<script>alert("x")</script>')) >= 3  # the text, the prompt, the answer
    assert "{{ config.api_key }}" in page  # a template in an answer is text, not rendered
    assert "<title>Energy &lt;Outlook&gt;</title>" in page
    assert "Prices &lt;b&gt;&amp;&lt;/b&gt; &quot;costs&quot;" in page
    assert "<p class=\"lead\">Lead with &lt;i&gt;tags&lt;/i&gt;.</p>" in page


def test_the_page_has_contents_links_tables_provenance_and_the_failures() -> None:
    page = render_html(_report(), calls={})
    for anchor in re.findall(r'href="#([^"]+)"', page):
        assert f'id="{anchor}"' in page, anchor  # every Contents link lands
    assert '<a href="#chapter-1">' in page and '<a href="#task-o1-t1">' in page
    assert "<h4>Heading</h4>" in page  # the model's own heading nests under the task's <h3>
    assert '<div class="table-wrap"><table>' in page  # a table in the text scrolls on a phone
    assert "<dt>check</dt><dd>pass: fine</dd>" in page and "110 in / 55 out" in page
    assert 'id="problems"' in page and "Broken (o2.t1)" in page
    assert "break-before: page" in page  # printing: a chapter per page


def test_the_example_run_writes_a_self_contained_page(tmp_path: Path) -> None:
    result = invoke("run", EXAMPLE, "--provider", "offline", "--output", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert page.count('<article class="task"') == 28
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from the network
    assert re.findall(r'<img src="([^"]{0,30})', page) and all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'<img src="([^"]{0,30})', page))
    assert page.count("<details class=\"provenance\">") == 28 and "[user]" in page  # prompts from the ledger


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_chromium_opens_the_example_report_finds_every_chapter_and_task_and_logs_no_error(tmp_path: Path) -> None:
    result = invoke("run", EXAMPLE, "--provider", "offline", "--output", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "out")
    page = run_dir / "report.html"
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
               "--enable-logging=stderr", "--v=0"]
    shown = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    source = page.read_text(encoding="utf-8")
    for anchor in re.findall(r'<(?:section|article) class="(?:chapter|task)" id="([^"]+)"', source):
        assert f'id="{anchor}"' in dom
    assert dom.count('class="task"') == 28
    assert not re.search(r"Uncaught|CONSOLE\(\d+\).*[Ee]rror", shown.stderr)
    screenshot = tmp_path / "report.png"  # kept with the test's files
    subprocess.run([*browser, f"--screenshot={screenshot}", "--window-size=412,900", page.as_uri()],
                   capture_output=True, timeout=120)
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
