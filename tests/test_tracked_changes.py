"""report.docx with tracked changes: python-docx opens it, its XML marks the right words, accepting every
change gives this week's clean document and rejecting every change last week's, and LibreOffice reads
the marks as tracked changes by report-pipeline."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn
from lxml import etree

from report_pipeline.models import Chapter, Objective, ReportView, TaskResult
from report_pipeline.writers import write_docx
from report_pipeline.writers.tracked import AUTHOR, write_tracked_docx
from tests.test_cli import invoke
from tests.test_compare import weekly_runs

T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC
INS, DEL, DEL_TEXT, TEXT, P, TR, TBL, PPR, RPR, TR_PR, BODY = (
    qn(f"w:{tag}") for tag in ("ins", "del", "delText", "t", "p", "tr", "tbl", "pPr", "rPr", "trPr", "body"))


# -- reading a document's revisions --------------------------------------------------------------


def body(path: Path) -> etree._Element:
    return docx.Document(str(path)).element.body


def resolved(element: etree._Element, *, accept: bool) -> etree._Element:
    """The body as Word leaves it after Accept All (or Reject All) changes."""
    root = copy.deepcopy(element)
    drop, keep = (DEL, INS) if accept else (INS, DEL)
    for tr in list(root.iter(TR)):
        properties = tr.find(TR_PR)
        if properties is not None and properties.find(drop) is not None:
            tr.getparent().remove(tr)
    for p in list(root.iter(P)):
        mark = p.find(PPR).find(RPR) if p.find(PPR) is not None and p.find(PPR).find(RPR) is not None else None
        if mark is not None and mark.find(drop) is not None:
            p.getparent().remove(p)  # its mark goes, and everything in it was of the same change
    for change in list(root.iter(drop)):
        change.getparent().remove(change)
    for change in list(root.iter(keep)):
        parent = change.getparent()
        at = parent.index(change)
        for offset, child in enumerate(list(change)):
            parent.insert(at + offset, child)
        parent.remove(change)
    for text in root.iter(DEL_TEXT):
        text.tag = TEXT
    return root


def texts(root: etree._Element) -> list[str]:
    """Each paragraph's text and each table row's cells, in body order, empty ones left out."""
    found = []
    for child in root:
        if child.tag == P:
            found.append("".join(t.text or "" for t in child.iter(TEXT)))
        elif child.tag == TBL:
            found += [" | ".join("".join(t.text or "" for t in tc.iter(TEXT)) for tc in tr.iterchildren(qn("w:tc")))
                      for tr in child.iter(TR)]
    return [text for text in found if text.strip()]


def marked(root: etree._Element, tag: str) -> list[str]:
    return ["".join(t.text or "" for t in element.iter(TEXT, DEL_TEXT)) for element in root.iter(tag)]


# -- hand-made reports ---------------------------------------------------------------------------


def view(texts_by_task: dict[str, str], *, failed: tuple[str, ...] = ()) -> ReportView:
    results = tuple(TaskResult("O1", key, f"Task {key}", "failed" if key in failed else "done",
                               error="boom" if key in failed else "", text=text, model="m")
                    for key, text in texts_by_task.items())
    chapter = Chapter(objective=Objective("O1", "One", index=0), results=results, number=1)
    return ReportView("P", "r1", T0, "offline", "m", (chapter,))


CASES = {
    "paragraphs": ("Para one stays.\n\nPara two has 52 units.\n\n- bullet a\n- bullet b\n\nDrop this one.\n\nEnd.",
                   ("Para one stays.\n\nPara two has 61 units and **more**.\n\n- bullet a\n- bullet c\n\nEnd.\n\n"
                    "A new closing paragraph.")),
    "table": ("Intro.\n\n| k | v |\n| --- | ---: |\n| a | 1 |\n| b | 2 |\n| c | 3 |",
              "Intro.\n\n| k | v |\n| --- | ---: |\n| a | 1 |\n| b | 20 |\n| d | 4 |\n| e | 5 |"),
    "structure": ("## Heading\n\nText under it.\n\n```\ncode 1\n```",
                  "## Heading, renamed\n\n| new | table |\n| --- | --- |\n| x | y |\n\n```\ncode 2\n```"),
    "same": ("Nothing moves.", "Nothing moves."),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_accepting_every_change_gives_the_new_document_and_rejecting_every_change_the_old(case, tmp_path) -> None:
    old, new = CASES[case]
    tracked = write_tracked_docx(tmp_path / "tracked.docx", view({"T1": new}), base_texts={"O1.T1": old})
    clean_new = write_docx(tmp_path / "new.docx", view({"T1": new}))
    clean_old = write_docx(tmp_path / "old.docx", view({"T1": old}))
    assert texts(resolved(body(tracked), accept=True)) == texts(body(clean_new))
    assert texts(resolved(body(tracked), accept=False)) == texts(body(clean_old))
    revisions = list(body(tracked).iter(INS, DEL))
    assert bool(revisions) == (old != new)
    assert all(r.get(qn("w:author")) == AUTHOR and re.fullmatch(r"2024-05-01T12:00:00Z", r.get(qn("w:date")))
               for r in revisions)
    ids = [r.get(qn("w:id")) for r in revisions]
    assert len(ids) == len(set(ids))


def test_words_are_marked_at_word_level_and_keep_their_formatting(tmp_path) -> None:
    old, new = CASES["paragraphs"]
    root = body(write_tracked_docx(tmp_path / "t.docx", view({"T1": new}), base_texts={"O1.T1": old}))
    assert "52" in marked(root, DEL) and "Drop this one." in marked(root, DEL) and "b" in marked(root, DEL)
    assert "61" in marked(root, INS) and "A new closing paragraph." in marked(root, INS)
    bold = [r for r in root.iter(qn("w:r")) if r.find(f"{qn('w:rPr')}/{qn('w:b')}") is not None
            and r.getparent().tag == INS]
    assert ["".join(t.text for t in r.iter(TEXT)) for r in bold] == ["more"]
    deleted_marks = [p for p in root.iter(P) if p.find(f"{PPR}/{RPR}/{DEL}") is not None]
    assert [texts_of(p) for p in deleted_marks] == ["Drop this one."]  # accepting leaves no empty paragraph


def texts_of(p: etree._Element) -> str:
    return "".join(t.text or "" for t in p.iter(TEXT, DEL_TEXT))


def test_table_rows_are_matched_and_a_row_only_one_side_has_is_inserted_or_deleted_whole(tmp_path) -> None:
    old, new = CASES["table"]
    root = body(write_tracked_docx(tmp_path / "t.docx", view({"T1": new}), base_texts={"O1.T1": old}))
    rows = {tuple(texts_of(tc) for tc in tr.iterchildren(qn("w:tc"))):
            "ins" if tr.find(f"{TR_PR}/{INS}") is not None else "del" if tr.find(f"{TR_PR}/{DEL}") is not None else ""
            for tr in root.iter(TR)}
    assert rows == {("k", "v"): "", ("a", "1"): "", ("b", "220"): "", ("c", "3"): "del", ("d", "4"): "ins",
                    ("e", "5"): "ins"}
    assert marked(root, DEL).count("2") == 1 and "20" in marked(root, INS)


def test_a_task_the_base_run_lacks_is_inserted_whole_and_a_failed_task_is_left_alone(tmp_path) -> None:
    report = view({"T1": "Brand new section.\n\n- with a list", "T2": ""}, failed=("T2",))
    root = body(write_tracked_docx(tmp_path / "t.docx", report, base_texts={"O1.T2": "Last week's text."}))
    assert marked(root, INS) == ["", "Brand new section.", "", "with a list"]  # paragraph marks, then words
    assert not list(root.iter(DEL))  # the failed task shows its note, as in the clean document


# -- the weekly runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weekly(tmp_path_factory) -> tuple[Path, str, str]:
    """Last week's run and this week's, with track_changes on: (output root, base, new)."""
    return weekly_runs(tmp_path_factory.mktemp("weekly"))


def test_the_new_run_writes_report_docx_with_tracked_changes_and_the_clean_document_beside_it(weekly) -> None:
    out, first, second = weekly
    tracked, clean = out / second / "report.docx", out / second / "report.clean.docx"
    document = docx.Document(str(tracked))  # opens
    assert any(p.style.name == "Heading 1" for p in document.paragraphs)
    root = document.element.body
    assert "52" in marked(root, DEL) and "61" in marked(root, INS) and " in 2025" in marked(root, INS)
    assert not list(body(clean).iter(INS, DEL))
    assert texts(resolved(root, accept=True)) == texts(body(clean))
    headings, current = set(), None
    for p in root.iter(P):
        style = p.find(f"{PPR}/{qn('w:pStyle')}")
        if style is not None and style.get(qn("w:val")) == "Heading2":
            current = texts_of(p)
        elif p.find(f".//{INS}") is not None or p.find(f".//{DEL}") is not None:
            headings.add(current)
    # every task whose text changed, and no other
    compared = json.loads(invoke("diff", first, second, "--output", out, "--json").output)
    rewritten = {t["title"] for c in compared["chapters"] for t in c["tasks"]
                 if any(op != "equal" for op, _ in t.get("text_diff", []))}
    assert headings == rewritten and {"Market", "Market summary", "Sales", "Sales compared"} <= rewritten
    last_week = body(out / first / "report.docx")
    def after_title(found: list[str]) -> list[str]:  # past the title page and Contents
        return found[found.index("1. Market", 3):]

    assert after_title(texts(resolved(root, accept=False))) == after_title(texts(last_week))


@pytest.mark.skipif(not shutil.which("soffice"), reason="needs LibreOffice (soffice)")
def test_libreoffice_reads_the_insertions_and_deletions_as_tracked_changes(weekly, tmp_path) -> None:
    """Converted to OpenDocument by LibreOffice, the document keeps each change as a tracked change by
    report-pipeline: the deleted words in its record of deletions, the inserted ones in the text."""
    out, _, second = weekly
    subprocess.run(["soffice", "--headless", "--convert-to", "odt", "--outdir", str(tmp_path),
                    str(out / second / "report.docx")], check=True, capture_output=True, timeout=180,
                   env={**os.environ, "HOME": str(tmp_path)})  # its own profile: no clash with a running one
    content = etree.fromstring(zipfile.ZipFile(tmp_path / "report.odt").read("content.xml"))
    ns = {"text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0", "dc": "http://purl.org/dc/elements/1.1/",
          "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0"}
    regions = content.findall(".//text:tracked-changes/text:changed-region", ns)
    kinds = [next(iter(region)).tag.split("}")[1] for region in regions]
    assert kinds.count("insertion") >= 4 and kinds.count("deletion") >= 3
    assert {c.text for c in content.findall(".//text:changed-region//dc:creator", ns)} == {AUTHOR}
    deleted = ["".join(d.itertext()) for d in content.findall(".//text:changed-region/text:deletion", ns)]
    assert "52" in "".join(deleted)
    tracked = content.find(".//text:tracked-changes", ns)
    tracked.getparent().remove(tracked)
    shown = "".join(content.find(".//office:text", ns).itertext())
    assert "to 61 (B)" in shown and "to 52" not in shown  # the text, its deletions taken out: the new one
