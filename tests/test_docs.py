"""The README and docs: the front door's size, its two commands, CI running the same test command,
and every relative link pointing at a file that exists."""

import re

import pytest

DOCS = ["README.md", "DEVELOPERS.md", "benchmarks/README.md", "docs/command-line.md", "docs/configuration.md",
        "docs/your-own-data.md", "docs/denoising.md", "docs/training.md", "docs/models.md", "docs/using-codes.md",
        "docs/reference-experiments.md"]


def commands(text: str) -> list[str]:
    return re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)


def test_the_readme_is_a_front_door_with_two_commands(root):
    text = (root / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    install_and_train, install_and_test = commands(text)
    assert "aekit train --config reference" in install_and_train and "-c constraints.txt" in install_and_train
    assert install_and_test.endswith("python -m pytest -q") and "'.[test]'" in install_and_test


def test_ci_runs_the_readmes_test_command(root):
    _, install_and_test = commands((root / "README.md").read_text())
    ci = (root / ".ci" / "run").read_text()
    assert install_and_test in ci.splitlines()


@pytest.mark.parametrize("page", DOCS)
def test_relative_links_point_at_files_that_exist(root, page):
    path = root / page
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    missing = [link for link in links if "://" not in link and not (path.parent / link).exists()]
    assert missing == []


def test_nothing_cites_files_outside_the_repository(root):
    for page in [*DOCS, *(str(p.relative_to(root)) for p in (root / "src").rglob("*.py"))]:
        text = (root / page).read_text()
        assert "SPEC.md" not in text and "the issue's bar" not in text, page


def test_every_option_the_docs_print_is_an_option_of_its_command(root):
    """`aekit COMMAND ... --flag` anywhere in the docs (code blocks, inline code, tables): the flag exists."""
    import argparse

    from aekit.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    general = {s for a in parser._actions for s in a.option_strings}
    wrong, seen = [], 0
    for page in DOCS:
        text = (root / page).read_text().replace("\\\n", " ")
        for m in re.finditer(r"aekit ([a-z]+)([^`\n|#]*)", text):
            if m.group(1) not in commands:
                continue
            seen += 1
            known = general | {s for a in commands[m.group(1)]._actions for s in a.option_strings}
            wrong += [(page, m.group(1), flag) for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2))
                      if flag not in known]
    assert seen > 100 and wrong == []


@pytest.mark.parametrize("page", DOCS)
def test_files_the_docs_name_exist(root, page):
    """`tests/...py`, `configs/...toml`, `benchmarks/...py` and the like in the text: files of the repository."""
    pattern = r"(?<![\w/.])((?:tests|src|benchmarks|configs|docs)/[\w/.-]+\.(?:py|toml|json|md))"
    named = re.findall(pattern, (root / page).read_text())
    assert [n for n in named if not (root / n).exists()] == []


def test_shipped_configs_are_named_not_read_through_the_checkouts_link(root):
    """`--config reference` and aekit.configs.HERE, never `configs/reference.toml`: a clone without symbolic links
    (Windows) has a text file there, not the folder."""
    code = [p for p in [*(root / "tests").rglob("*.py"), *(root / "benchmarks").glob("*.py")] if p.name != "test_docs.py"]
    pages = [*DOCS, *(str(p.relative_to(root)) for p in code)]
    through_link = r"(?<![\w/.])configs/[\w.-]+\.toml|\"configs\" / [\w\"]"
    assert [(page, m) for page in pages for m in re.findall(through_link, (root / page).read_text())] == []
