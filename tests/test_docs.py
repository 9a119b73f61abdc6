"""The README and the user guide hold together: every relative link in README.md and docs/**/*.md reaches a file of
the repository (and a heading of it, when it names one), every page of docs/guide/ is reachable from the README, and
the README's demo is the study `make run` trains, and every comparison table they show has
today's headers (but the few listed as printed before them)."""

from __future__ import annotations

import re
from pathlib import Path

from test_report import write

from ablate.config import ModelConfig
from ablate.report import adaptive as adaptive_report
from ablate.report import summary as summary_module

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def without_code_blocks(text: str) -> str:
    """A Markdown page less its fenced and indented code blocks: a `# comment` there is no heading, a link no link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"^(?:    |\t).*$", "", text, flags=re.M)


def prose(text: str) -> str:
    """A Markdown page less all its code, inline spans too: what a reader sees as text and links."""
    return re.sub(r"`[^`\n]*`", "", without_code_blocks(text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", without_code_blocks(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        repeat = counts.get(slug, 0)
        counts[slug] = repeat + 1
        found.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of `page` that names no file under `root`, or no heading of the file it names."""
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto: - not this repository's
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if path.startswith("/") or not file.is_relative_to(root) or not file.exists():
            broken.append(f"{page.relative_to(root)}: {target} (no such file in the repository)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{page.relative_to(root)}: {target} (no heading #{anchor} in {file.relative_to(root)})")
    return broken


def test_every_relative_link_of_the_readme_and_the_docs_reaches_its_file_and_heading() -> None:
    assert len(PAGES) > 2
    broken = [line for page in PAGES for line in broken_links(page)]
    assert not broken, "\n".join(broken)


def test_a_link_to_a_missing_file_or_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text("# Scaling out\n\n## On SLURM: `sbatch`\n\n## On SLURM: `sbatch`\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](guide.md#on-slurm-sbatch) [twice](guide.md#on-slurm-sbatch-1) [here](#top) [web](https://x.org/a)\n"
                    "[gone](missing.md) [no heading](guide.md#scaling) [outside](/etc/hosts)\n\n    [in code](nowhere.md)\n\n# Top\n")
    assert [line.split(": ", 1)[1] for line in broken_links(page, tmp_path)] == [
        "missing.md (no such file in the repository)",
        "guide.md#scaling (no heading #scaling in guide.md)",
        "/etc/hosts (no such file in the repository)",
    ]


def test_every_page_of_the_user_guide_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in LINK.findall(prose(readme))}
    guide = set((ROOT / "docs" / "guide").glob("*.md"))
    assert guide and guide <= linked, sorted(p.name for p in guide - linked)


def test_the_readme_shows_the_demo_study_that_make_run_trains() -> None:
    demo = re.search(r"^DEMO\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert demo, "the Makefile names no DEMO"
    assert f"    ablate run {demo.group(1).strip()}\n    ablate report runs/demo\n" in (ROOT / "README.md").read_text()


CONSOLE_TABLE = re.compile(r"^    (variant  .*)\n    -{3,}[- ]*$", flags=re.M)
OPTIONAL = {"TOST p (Holm)", "trainable"}  # only with an equivalence margin, only under transfer learning
# Tables printed before the `test` column and the Holm-adjusted intervals, each said so beside it on its page, whose
# study is too costly to train again here: regenerating one takes it off this list (the test fails until it does).
KNOWN_STALE = {
    "docs/guide/reading-a-report.md: variant  n  test_acc (%) mean ± std  Δ vs baseline [95% CI]  p Holm  MDE  g [95% CI]  TOST p (Holm)  verdict  params",
    "docs/guide/reading-a-report.md: variant  n  val_acc (%) mean ± std  Δ vs baseline [Holm-adjusted 95% CI]  p Holm  MDE  g [Holm-adjusted 95% CI]  verdict  params",
    "docs/guide/transfer-learning.md: variant  n  test_acc (%) mean ± std  Δ vs baseline [95% CI]  p Holm  verdict  params  trainable",
}


def console_table_headers(text: str) -> list[list[str]]:
    """The headers of every comparison table a page shows as `ablate report` prints it (an indented block)."""
    return [re.split(r" {2,}", line.strip()) for line in CONSOLE_TABLE.findall(text)]


def test_every_comparison_table_of_the_readme_and_the_guide_has_the_headers_the_report_prints_today(tmp_path: Path) -> None:
    for seed, acc in enumerate([0.90, 0.91, 0.92]):  # a study written through the store: nothing trained
        write(tmp_path / "runs", "baseline", seed, acc, ModelConfig())
        write(tmp_path / "runs", "model.width=64", seed, acc + 0.03, ModelConfig(width=64))
    summary = summary_module.study_summary(tmp_path / "runs" / "known", "test_acc", margin=1.0)[2]
    today = list(summary_module.display_table(summary, "test_acc", compact=True).columns)
    delta = next(h for h in today if h.startswith("Δ vs baseline"))
    anytime = [delta.replace(delta[delta.index("[") + 1:-1], "anytime-valid CI") if h == delta else h
               for h in today if h not in adaptive_report.FIXED_N_HEADERS]
    stale = []
    for page in PAGES:
        for headers in console_table_headers(page.read_text()):
            shown = [re.sub(r"^\w+ \(%\) mean", "test_acc (%) mean", h) for h in headers if h not in OPTIONAL]
            expected = anytime if "anytime-valid" in " ".join(headers) else [h for h in today if h not in OPTIONAL]
            if shown != expected:
                stale.append(f"{page.relative_to(ROOT)}: {'  '.join(headers)}")
    assert console_table_headers(f"    {'  '.join(today)}\n    ---  ---\n") == [today]
    assert set(stale) == KNOWN_STALE, "tables with headers the report no longer prints:\n" + "\n".join(sorted(set(stale) - KNOWN_STALE))
