"""What a template author sees when a template is missing, broken or asks for unknown data."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import TemplateError
from newsletter.render import render_issue, render_meta_text
from test_render_html import DEFAULT_TEMPLATES, META, VIEW_URL, loaded_config, make_selection

VALID_TEXT = (DEFAULT_TEMPLATES / "email.txt.j2").read_text(encoding="utf-8")
VALID_MJML = (DEFAULT_TEMPLATES / "email.mjml.j2").read_text(encoding="utf-8")


def templates(tmp_path: Path, mjml: str = VALID_MJML, text: str = VALID_TEXT) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "email.mjml.j2").write_text(mjml, encoding="utf-8")
    (folder / "email.txt.j2").write_text(text, encoding="utf-8")
    return folder


def render_error(template_dir: Path) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        render_issue(loaded_config(template_dir), META, make_selection(), VIEW_URL)
    return caught.value


def test_missing_folder_names_the_template_and_the_setting(tmp_path: Path) -> None:
    error = render_error(tmp_path / "no-such-folder")
    assert "template 'email.mjml.j2' not found in" in error.message
    assert str(tmp_path / "no-such-folder") in error.message
    assert "template.directory in newsletter.yml" in str(error)
    assert error.exit_code == 4


def test_missing_text_template(tmp_path: Path) -> None:
    folder = templates(tmp_path)
    (folder / "email.txt.j2").unlink()
    assert "template 'email.txt.j2' not found" in render_error(folder).message


def test_syntax_error_names_file_line_and_problem(tmp_path: Path) -> None:
    mjml = "<mjml>\n  <mj-body>\n    {{ newsletter.name }\n  </mj-body>\n</mjml>\n"
    error = render_error(templates(tmp_path, mjml=mjml))
    assert error.message == "email.mjml.j2:3: unexpected '}'"


def test_unclosed_block_in_text_template(tmp_path: Path) -> None:
    error = render_error(templates(tmp_path, text="Hello\n{% if posts %}\nmore\n"))
    assert error.message.startswith("email.txt.j2:")
    assert "'endif'" in error.message


def test_undefined_variable_names_the_variable_and_line(tmp_path: Path) -> None:
    mjml = VALID_MJML.replace("{{ lead.title }}</a>", "{{ lead.titel }}</a>", 1)
    line = next(n for n, text in enumerate(mjml.splitlines(), 1) if "lead.titel" in text)
    error = render_error(templates(tmp_path, mjml=mjml))
    assert error.message.startswith(f"email.mjml.j2:{line}: ")
    assert "titel" in error.message
    assert "available variables:" in str(error) and "lead" in str(error)


def test_undefined_top_level_name_in_text_template(tmp_path: Path) -> None:
    text = "Issue {{ issue.number }}\n\n{{ leed.title }}\n"
    error = render_error(templates(tmp_path, text=text))
    assert error.message == "email.txt.j2:3: 'leed' is undefined"


def test_invalid_mjml_names_the_template_and_mjml_message(tmp_path: Path) -> None:
    mjml = "<mjml><mj-body><mj-section><mj-column>{{ newsletter.name }}</mj-body></mjml>\n"
    error = render_error(templates(tmp_path, mjml=mjml))
    assert error.message.startswith("email.mjml.j2: the template did not produce valid MJML: ")
    assert "unexpected end of stream" in error.message or "parse" in error.message


def test_bad_merge_field_name_in_a_template(tmp_path: Path) -> None:
    text = "Hi {{ merge('First Name') }}\n"
    error = render_error(templates(tmp_path, text=text))
    assert error.message.startswith("email.txt.j2:1: ")
    assert "'First Name'" in error.message


CONTEXT = {"newsletter": {"name": "Leading Together"}, "issue": {"number": 7}}


def test_subject_renders_as_one_line() -> None:
    subject = render_meta_text(
        loaded_config(),
        "{{ newsletter.name }} #{{ issue.number }}:\n  <b>&</b>",
        field="issue.subject",
        context=CONTEXT,
    )
    assert subject == "Leading Together #7: <b>&</b>"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ newsletter.name }} #{{ issue.nmber }}", "has no attribute 'nmber'"),
        ("{{ lead.title }}", "'lead' is undefined"),
        ("{{ newsletter.name", "template syntax error"),
    ],
)
def test_bad_subject_names_the_setting(template: str, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_meta_text(loaded_config(), template, field="issue.subject", context=CONTEXT)
    assert caught.value.message.startswith("n.yml: issue.subject: ")
    assert problem in caught.value.message
    assert "it may use: issue, newsletter" in str(caught.value)
