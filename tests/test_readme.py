"""README promises: the test command it shows is exactly what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- test-command -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    assert "torch==2.13.0" in block
    assert block in (ROOT / ".ci" / "run").read_text().splitlines()


def _bash_block_after(readme: str, marker: str) -> str:
    return readme.split(marker, 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()


def test_ci_runs_the_readme_demo_command_before_the_test_command():
    readme = (ROOT / "README.md").read_text()
    demo, tests = _bash_block_after(readme, "<!-- demo-command -->"), _bash_block_after(readme, "<!-- test-command -->")
    assert "torch==2.13.0" in demo and "--demo" in demo
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert demo in ci and tests in ci
    assert ci.index(demo) < ci.index(tests)  # demo first, then tests, in one checkout: the order that broke


def test_ci_starts_from_an_empty_home():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'HOME="$(mktemp -d)"; export HOME' in ci


def test_every_figure_source_the_readme_names_exists_and_the_version_is_one():
    import re

    readme = (ROOT / "README.md").read_text()
    cited = set(re.findall(r"benchmarks/results/[\w.*-]+\.md", readme))
    assert cited, "the README quotes no benchmark results file"
    for name in cited:
        assert list(ROOT.glob(name)), f"{name} is quoted by the README but no such results file exists"
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert f"Version {version}" in readme
    assert set(re.findall(r"\b[Vv](?:ersion )?\d+\.\d+(?:\.\d+)?\b", readme)) <= {f"Version {version}"}
    assert not re.search(r"(?<![\w/])#\d+\b", readme), "the README is for users: no issue numbers"
