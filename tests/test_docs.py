"""The README and the user guide hold together: every relative link in README.md and docs/**/*.md reaches a file of
the repository (and a heading of it, when it names one), every page of docs/guide/ is reachable from the README, and
the README's demo is the study `make run` trains."""

from __future__ import annotations

import re
from pathlib import Path

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
