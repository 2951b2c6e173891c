"""The repository's own documentation is reachable: every ``docs/<page>.md#<anchor>`` cited in code, configs or
READMEs names a page and a heading that exist, and every relative link in a Markdown file resolves."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ('backbone', 'tasks', 'feature_store', 'tools', 'configs', 'tests', 'docs')
CITATION = re.compile(r'docs/([\w.-]+\.md)(?:#([\w-]+))?')
LINK = re.compile(r'\]\(([^)\s]+)\)')


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r'^#{1,6}\s+(.+?)\s*#*$', page.read_text(), re.MULTILINE)}


def text_files() -> list[Path]:
    files = [REPO / 'README.md'] + [p for d in SOURCES for p in (REPO / d).rglob('*') if p.suffix in ('.py', '.md')]
    return sorted(p for p in files if p.is_file() and p.name != 'test_docs.py')


def test_slug_matches_github():
    assert slug('Embedding, attention and blocks') == 'embedding-attention-and-blocks'
    assert slug('K710 heads and safe loading') == 'k710-heads-and-safe-loading'
    assert slug('`tools/test.py` output') == 'toolstestpy-output'


def test_every_docs_citation_names_an_existing_page_and_heading():
    missing = []
    for path in text_files():
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            for page, anchor in CITATION.findall(line):
                target = REPO / 'docs' / page
                if not target.is_file():
                    missing.append(f'{path.relative_to(REPO)}:{n}: docs/{page} does not exist')
                elif anchor and anchor not in anchors(target):
                    missing.append(f'{path.relative_to(REPO)}:{n}: docs/{page} has no heading #{anchor}')
    assert not missing, '\n'.join(missing)


@pytest.mark.parametrize('doc', sorted(p.relative_to(REPO).as_posix() for p in
                                       [REPO / 'README.md', *(REPO / 'docs').glob('*.md'),
                                        *(REPO / 'configs').rglob('README.md'), *(REPO / 'tasks').rglob('README.md'),
                                        *(REPO / 'feature_store').glob('README.md')]))
def test_relative_links_resolve(doc):
    path = REPO / doc
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r'[a-z]+://|mailto:', target):
            continue
        file_part, _, anchor = target.partition('#')
        resolved = (path.parent / file_part) if file_part else path
        if not resolved.exists():
            broken.append(f'{target}: {resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved} '
                          'does not exist')
        elif anchor and resolved.suffix == '.md' and anchor not in anchors(resolved):
            broken.append(f'{target}: no heading #{anchor}')
    assert not broken, f'{doc}:\n' + '\n'.join(broken)
