"""The Markdown documentation's relative links: every `](path)` and `](path#anchor)` in the
README, ARCHITECTURE.md, docs/ and the folders' READMEs names a file of the checkout (and a
heading of it), and every docs/ page is linked from the README."""

import re

from conftest import REPO

PAGES = sorted(
    [REPO / "README.md", REPO / "ARCHITECTURE.md"]
    + [*REPO.glob("docs/*.md"), *REPO.glob("*/README.md")]
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def _links(page):
    text = FENCE.sub("", page.read_text())
    for target in LINK.findall(text):
        if not re.match(r"[a-z]+:", target):  # not http:, https:, mailto:
            yield target


def _anchors(page):
    """GitHub's heading ids: lower case, punctuation but '-' and '_' dropped, spaces -> '-'."""
    text = FENCE.sub("", page.read_text())
    ids = set()
    for heading in re.findall(r"^#+\s+(.*?)\s*$", text, re.M):
        ids.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return ids


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        for target in _links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert len(PAGES) > 4 and not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in _links(REPO / "README.md")}
    orphans = [p.name for p in REPO.glob("docs/*.md") if p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"
