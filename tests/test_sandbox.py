"""Templates and rendered settings run sandboxed, within a time and an output limit."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml

from conftest import run_cli
from newsletter.sandbox import (
    RenderLimitExceeded,
    RenderLimits,
    render_bounded,
    sandboxed_environment,
)

ON = "2026-11-24"
SECRET = "SG.this-must-never-leave-the-process"
STEAL = "{{ cycler.__init__.__globals__.os.environ.SENDGRID_API_KEY }}"


def set_in_config(config: Path, section: str, **values: object) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.setdefault(section, {}).update(values)
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def add_to_template(config: Path, name: str, snippet: str) -> int:
    """Put ``snippet`` on a line of its own near the top of a template; its line number."""
    path = config.parent / "templates" / "default" / name
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if not line.startswith("{#")) + 1
    lines.insert(at, snippet + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return at + 1


def build(config: Path) -> tuple[int, str]:
    result = run_cli(["build", "--config", str(config), "--date", ON])
    return result.exit_code, result.output


def nothing_written(config: Path) -> bool:
    issues = config.parent / "issues"
    return not issues.exists() or not [p for p in issues.iterdir() if p.name[0].isdigit()]


def test_a_subject_reaching_for_python_internals_fails_the_build(
    sample_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", SECRET)
    set_in_config(sample_project, "issue", subject=f"News {STEAL}")
    code, output = build(sample_project)
    assert code == 4, output
    assert "newsletter.yml: issue.subject: access to attribute '__init__' of 'type' object " \
        "is unsafe" in output  # fmt: skip
    assert "run in a sandbox" in output
    assert SECRET not in output
    assert nothing_written(sample_project)


def test_a_template_reaching_for_python_internals_fails_with_its_line(
    sample_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", SECRET)
    line = add_to_template(sample_project, "email.txt.j2", STEAL)
    code, output = build(sample_project)
    assert code == 4, output
    assert f"email.txt.j2:{line}: access to attribute '__init__'" in output
    assert SECRET not in output and nothing_written(sample_project)


def test_a_billion_item_loop_is_refused(sample_project: Path) -> None:
    line = add_to_template(
        sample_project, "email.txt.j2", "{% for i in range(10**9) %}{% endfor %}"
    )
    code, output = build(sample_project)
    assert code == 4, output
    assert f"email.txt.j2:{line}: Range too big. The sandbox blocks ranges larger than " \
        "MAX_RANGE (100000)." in output  # fmt: skip
    assert nothing_written(sample_project)


def test_loops_inside_loops_are_stopped_at_the_time_limit(sample_project: Path) -> None:
    set_in_config(sample_project, "template", time_limit=0.5)
    endless = (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    line = add_to_template(sample_project, "email.mjml.j2", endless)
    code, output = build(sample_project)
    assert code == 4, output
    assert f"email.mjml.j2:{line}: rendering took longer than the limit of 0.5 s and was " \
        "stopped" in output  # fmt: skip
    assert "template.time_limit" in output
    assert nothing_written(sample_project)


def test_a_huge_output_is_stopped_at_the_output_limit(sample_project: Path) -> None:
    add_to_template(
        sample_project, "email.txt.j2", "{% for i in range(100000) %}{{ 'x' * 999 }}\n{% endfor %}"
    )
    code, output = build(sample_project)
    assert code == 4, output
    assert "email.txt.j2: the output passed the limit of 5,000,000 characters and rendering " \
        "was stopped" in output  # fmt: skip
    assert "template.output_limit" in output
    assert nothing_written(sample_project)


@pytest.mark.parametrize("expression", ["'x' * 10**9", "10 ** (10 ** 10)", "[1, 2] * 10**9"])
def test_a_single_huge_value_is_refused_before_it_is_built(
    sample_project: Path, expression: str
) -> None:
    line = add_to_template(sample_project, "email.txt.j2", "{{ " + expression + " }}")
    code, output = build(sample_project)
    assert code == 4, output
    assert re.search(
        rf"email\.txt\.j2:{line}: the output passed the limit of 5,000,000 characters", output
    )


def test_a_subject_has_its_own_small_output_limit(sample_project: Path) -> None:
    set_in_config(sample_project, "issue", subject="{{ 'a' * 20000 }}")
    code, output = build(sample_project)
    assert code == 4, output
    assert "newsletter.yml: issue.subject: the output passed the limit of 10,000 characters" in (
        output
    )


def test_templates_cannot_change_the_data_they_are_given() -> None:
    env = sandboxed_environment()
    posts = ["a"]
    with pytest.raises(jinja2.exceptions.SecurityError, match="unsafe"):
        render_bounded(env.from_string("{{ posts.append('b') }}"), {"posts": posts},
                       RenderLimits(seconds=5, characters=10_000))  # fmt: skip
    assert posts == ["a"]


def test_limits_hold_outside_a_build_and_leave_later_renders_alone() -> None:
    env = sandboxed_environment()
    tight = RenderLimits(seconds=5, characters=100)
    with pytest.raises(RenderLimitExceeded, match="limit of 100 characters"):
        render_bounded(env.from_string("{% for i in range(200) %}x{% endfor %}"), {}, tight)
    # Outside render_bounded no budget applies: a plain render of the same size works.
    assert env.from_string("{{ 'x' * 200 }}").render() == "x" * 200
