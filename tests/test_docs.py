"""The documentation stays true: generated tables, links, pipeline and environment names."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]


@pytest.fixture(scope="module")
def catalog_table():
    spec = importlib.util.spec_from_file_location(
        "catalog_table", PROJECT / "scripts" / "catalog_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_architecture_dataset_table_is_generated_from_the_catalog(catalog_table):
    """Fix with `python scripts/catalog_table.py --write`."""
    text = (PROJECT / "docs" / "architecture.md").read_text()
    assert catalog_table.current_block(text) == catalog_table.render()


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+\s+(.+)$", page.read_text(), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_existing_files_and_headings(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_name_registered_pipelines_and_existing_environments(page, catalog_table):
    """`--pipelines a,b` and `--env e` in a page name what exists (upper-case names are placeholders)."""
    text = page.read_text()
    registered = set(catalog_table._pipelines())
    named = {
        name
        for group in re.findall(r"--pipelines?[ =]([a-z_,]+)", text)
        for name in group.split(",")
    }
    assert named - registered == set()
    environments = {p.name for p in (PROJECT / "conf").iterdir() if p.is_dir()}
    assert set(re.findall(r"--env[ =]([a-z_]+)", text)) - environments == set()


def test_readme_test_command_is_what_ci_runs():
    readme = (PROJECT / "README.md").read_text()
    assert "```bash\npytest\n```" in readme
    ci = (PROJECT / ".ci" / "run").read_text().splitlines()
    assert "pytest" in ci
    assert 'pip install -e ".[dev]"' in readme


def test_architecture_pipelines_table_names_every_node(catalog_table):
    """The hand-written pipelines table of docs/architecture.md lists every registered node."""
    text = (PROJECT / "docs" / "architecture.md").read_text()
    prose = text.replace(catalog_table.current_block(text), "")
    nodes = {
        node.name for pipeline in catalog_table._pipelines().values() for node in pipeline.nodes
    }
    # The namespaced preprocessing nodes are listed once, as "the five preprocessing nodes".
    missing = {
        n
        for n in nodes
        if f"`{n}`" not in prose and f"`{n.removeprefix('inference.')}`" not in prose
    }
    assert missing == set()
