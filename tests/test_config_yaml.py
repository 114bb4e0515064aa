"""newsletter.yml's YAML and ``${VAR}``: what a hand never writes is refused with the line to fix.

Aliases are bounded, keys written twice are refused, the file size is capped before parsing,
and ``${VAR}`` means the same in every string setting; ``newsletter validate`` warns when
the store, which holds a secret, is readable by others.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from conftest import run_cli
from newsletter import yaml_loader
from newsletter.config import load_config, parse_config
from newsletter.config_size import MAX_CONFIG_BYTES
from newsletter.errors import ConfigError
from newsletter.yaml_loader import ALIAS_NODE_BUDGET
from test_config import MINIMAL, problems

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

ALIAS_TOO_MANY = (
    "newsletter.yml:5: the alias '*d' would make aliases copy more than 10,000 values in all "
    "(a file built to grow without end); write the repeated settings out, or reuse fewer of "
    "them through aliases"
)


def write(folder: Path, text: str) -> Path:
    config = folder / "newsletter.yml"
    config.write_text(text, encoding="utf-8")
    return config


# --- aliases --------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_budget() -> None:
    tracemalloc.start()
    try:
        found = problems(BILLION_LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == [ALIAS_TOO_MANY]
    assert peak < 1_000_000  # nothing was copied out: the whole bomb is 9**9 values


def test_anchors_that_reuse_a_few_settings_are_fine() -> None:
    text = MINIMAL.replace(
        "    path: content\n",
        "    path: content\n    guest: &guest {tags: [guest-column], authors: [Ann]}\n"
        "  - name: partners\n    type: feed\n    url: feed.xml\n    guest: *guest\n",
    )
    sources = parse_config(text).sources
    assert sources[0].guest == sources[1].guest
    assert sources[1].guest.tags == ["guest-column"]


def test_the_budget_counts_every_value_an_alias_copies() -> None:
    items = ", ".join(["x"] * 99)
    within = f"a: &a [{items}]\n" + "".join(f"b{n}: *a\n" for n in range(ALIAS_NODE_BUDGET // 100))
    with pytest.raises(ConfigError) as caught:
        parse_config(within)
    assert not any("alias" in problem for problem in caught.value.problems)  # only unknown keys

    found = problems(within + "over: *a\n")
    assert found == [
        "newsletter.yml:102: the alias '*a' would make aliases copy more than 10,000 values in "
        "all (a file built to grow without end); write the repeated settings out, or reuse "
        "fewer of them through aliases"
    ]


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    assert problems("selection: &loop\n  pin: [*loop]\n") == [
        "newsletter.yml:2: the alias '*loop' is inside the value it refers to, which would "
        "never end; write that value out instead"
    ]


def test_an_alias_without_its_anchor_names_it() -> None:
    assert problems(MINIMAL + "selection: *defaults\n") == [
        "newsletter.yml:10: the alias '*defaults' refers to no anchor '&defaults' above it; "
        "define the anchor first or correct the name"
    ]


def test_a_merge_key_may_be_overridden_by_the_keys_beside_it() -> None:
    merged = MINIMAL.replace(
        "  postal_address: 1 Example Street\n",
        "  postal_address: 1 Example Street\n  <<: {language: fr, timezone: Europe/Paris}\n"
        "  timezone: Europe/London\n",
    )
    newsletter = parse_config(merged).newsletter
    assert (newsletter.language, newsletter.timezone) == ("fr", "Europe/London")


# --- keys written twice --------------------------------------------------------------------


def test_a_section_written_twice_is_refused_naming_both_lines() -> None:
    text = MINIMAL + "selection:\n  posts: 3\nissue:\n  first_number: 2\nselection:\n  posts: 7\n"
    assert problems(text) == [
        "newsletter.yml:14: key 'selection' appears again (first at line 10); keep one"
    ]


def test_keys_written_twice_at_any_depth_are_all_listed_in_line_order() -> None:
    text = MINIMAL.replace("    path: content\n", "    path: content\n    type: feed\n")
    text += "selection:\n  posts: 5\n  pin: []\n  posts: 6\n"
    assert problems(text) == [
        "newsletter.yml:10: key 'sources[0].type' appears again (first at line 8); keep one",
        "newsletter.yml:14: key 'selection.posts' appears again (first at line 12); keep one",
    ]


def test_the_same_key_in_two_list_items_is_not_a_duplicate() -> None:
    text = MINIMAL + "  - name: partners\n    type: feed\n    url: feed.xml\n"
    assert [source.name for source in parse_config(text).sources] == ["blog", "partners"]


# --- what else a config never holds ------------------------------------------------------------


def test_a_second_document_is_refused() -> None:
    assert problems(MINIMAL + "---\nselection: {posts: 3}\n") == [
        "newsletter.yml:10: a second document ('---') follows the first; newsletter.yml holds "
        "one, so remove the line '---' and merge what follows into the settings above"
    ]


def test_deep_nesting_is_refused_without_a_traceback() -> None:
    assert problems("a: " + "[" * 200 + "]" * 200 + "\n") == [
        "newsletter.yml:1: nested more than 50 levels deep; check the indentation"
    ]


def test_python_tags_are_refused() -> None:
    found = problems(MINIMAL + "selection: !!python/object:os.system {posts: 1}\n")
    assert found == [
        "newsletter.yml:10: the tag tag:yaml.org,2002:python/object:os.system has no meaning in "
        "newsletter.yml; remove it"
    ]
    found = problems(MINIMAL + "output: {directory: !!python/name:os.system x}\n")
    assert found[0].startswith("newsletter.yml:10: YAML syntax error: could not determine a")


# --- size -----------------------------------------------------------------------------------------


def test_a_file_over_the_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    padding = "# " + "x" * 98 + "\n"
    text = "selection: [unclosed\n" + padding * (MAX_CONFIG_BYTES // len(padding) + 1)
    config = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.problems == [
        f"{config}: the file is 2.0 MB, over the 2 MB limit for a config; keep content and "
        "subscribers out of it (sources and the store hold them)"
    ]  # not the syntax error on line 1: nothing was parsed
    with pytest.raises(ConfigError, match="over the 2 MB limit"):
        parse_config(text)


def test_a_file_just_under_the_limit_is_read(tmp_path: Path) -> None:
    padding = "# " + "x" * 98 + "\n"
    config = write(
        tmp_path, MINIMAL + padding * ((MAX_CONFIG_BYTES - len(MINIMAL)) // len(padding))
    )
    assert load_config(config).settings.newsletter.name == "Leading Together"


# --- ${VAR} -----------------------------------------------------------------------------------


def test_a_reference_is_expanded_in_any_string_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NL_SITE", "https://news.example.org")
    monkeypatch.setenv("NL_TAG", "opinion")
    text = MINIMAL.replace("https://example.org", "${NL_SITE}")
    text = text.replace("path: content", "path: ${NL_TAG}/posts\n    guest: {tags: ['${NL_TAG}']}")
    config = parse_config(text + "output: {directory: 'issues-${NL_TAG}'}\n")
    assert config.newsletter.site_url == "https://news.example.org"
    assert config.sources[0].path == "opinion/posts"  # type: ignore[union-attr]
    assert config.sources[0].guest.tags == ["opinion"]
    assert config.output.directory == "issues-opinion"


def test_an_unset_variable_names_itself_the_setting_and_the_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NL_UNSET_DIR", raising=False)
    monkeypatch.setenv("NL_EMPTY", "")
    text = MINIMAL.replace("https://example.org", "${NL_EMPTY}")
    text += "output:\n  directory: ${NL_UNSET_DIR}/issues\n"
    assert problems(text) == [
        "newsletter.yml:3: newsletter.site_url: the environment variable NL_EMPTY is not set; "
        "export NL_EMPTY=... and retry, or write $${ for a literal ${",
        "newsletter.yml:11: output.directory: the environment variable NL_UNSET_DIR is not "
        "set; export NL_UNSET_DIR=... and retry, or write $${ for a literal ${",
    ]  # and no second complaint that '${NL_EMPTY}' is not an http(s) URL


def unset(line: int, key: str, name: str) -> str:
    """The message spelt out in full by the test above."""
    return (
        f"newsletter.yml:{line}: {key}: the environment variable {name} is not set; "
        f"export {name}=... and retry, or write $${{ for a literal ${{"
    )


def test_an_unset_variable_in_a_list_names_the_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NL_UNSET_TAG", raising=False)
    text = MINIMAL.replace(
        "path: content",
        "path: content\n    guest:\n      tags:\n        - a\n        - ${NL_UNSET_TAG}",
    )
    assert problems(text) == [unset(13, "sources[0].guest.tags[1]", "NL_UNSET_TAG")]


def test_double_dollar_is_a_literal_and_a_lone_dollar_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOME_DIR", raising=False)
    text = MINIMAL + 'issue:\n  subject: "Costs $5: $${HOME_DIR} explained"\n'
    assert parse_config(text).issue.subject == "Costs $5: ${HOME_DIR} explained"


def test_a_malformed_reference_says_how_to_write_a_literal() -> None:
    assert problems(MINIMAL + "output: {directory: '${1st}'}\n") == [
        "newsletter.yml:10: output.directory: '${' starts no variable reference (expected "
        "${NAME}, NAME of letters, digits and _); write $${ for a literal ${"
    ]


def test_an_aliased_reference_is_expanded_where_it_is_copied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NL_UNSET_DIR", raising=False)
    text = MINIMAL + "output: {directory: &dir '${NL_UNSET_DIR}'}\ntemplate: {directory: *dir}\n"
    assert problems(text) == [
        unset(10, "output.directory", "NL_UNSET_DIR"),
        unset(11, "template.directory", "NL_UNSET_DIR"),
    ]


def test_an_alias_copies_the_text_as_written_not_as_expanded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NL_DIR", "out")
    monkeypatch.setenv("NL_KEY", "secret-value")
    text = MINIMAL + (
        "output: {directory: &literal 'keep-$${NL_DIR}'}\n"
        "template: {directory: *literal}\n"
        "unsubscribe: {secret: &ref '${NL_KEY}', mailto: *ref}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.problems == [
        "newsletter.yml:12: unsubscribe.mailto: 'secret-value' is not a valid e-mail address: "
        "An email address must have an @-sign."
    ]  # expanded where it is copied, though left as a reference where it is written
    config = parse_config(text.replace(", mailto: *ref", ""))
    assert config.output.directory == config.template.directory == "keep-${NL_DIR}"
    assert config.unsubscribe.secret == "${NL_KEY}"


def test_secrets_stay_references_until_a_command_needs_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    monkeypatch.delenv("NL_UNSET_KEY", raising=False)
    text = MINIMAL + (
        "provider:\n  smtp: {password: '${SMTP_PASSWORD}'}\n"
        "  sendgrid: {api_key: '${NL_UNSET_KEY}'}\n"
        "unsubscribe: {secret: '${NL_UNSET_KEY}'}\n"
        "web: {sendgrid_webhook_key: '${NL_UNSET_KEY}'}\n"
    )
    config = parse_config(text)  # no credential is needed to load, validate or build
    assert config.provider.smtp.password == "${SMTP_PASSWORD}"
    assert config.provider.sendgrid.api_key == "${NL_UNSET_KEY}"
    found = problems(MINIMAL + "provider:\n  smtp: {password: 'pw-${SMTP_PASSWORD}'}\n")
    assert found[0].startswith("newsletter.yml:11: provider.smtp.password: secrets never live")


@pytest.mark.parametrize(
    "text",
    [BILLION_LAUGHS, "selection: &loop\n  pin: [*loop]\n", MINIMAL + "newsletter: {}\n"],
    ids=["alias bomb", "alias in its anchor", "key twice"],
)
def test_without_libyaml_the_messages_are_the_same(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = problems(text)
    monkeypatch.setattr(yaml_loader, "_Events", yaml_loader.PythonEvents)
    assert problems(text) == expected


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            lambda text: text + BILLION_LAUGHS,
            "the alias '*d' would make aliases copy more than 10,000 values",
        ),
        (
            lambda text: text + "selection:\n  posts: 3\n",
            "key 'selection' appears again (first at line 30); keep one",
        ),
        (
            lambda text: text.replace("directory: issues", "directory: ${NL_UNSET_OUT}"),
            "output.directory: the environment variable NL_UNSET_OUT is not set",
        ),
        (
            lambda text: text + ("#" * 99 + "\n") * 25_000,
            "the file is 2.4 MB, over the 2 MB limit for a config",
        ),
    ],
    ids=["alias bomb", "section twice", "unset variable", "too big"],
)
def test_validate_exits_2_naming_the_line(
    sample_project: Path, monkeypatch: pytest.MonkeyPatch, breakage: object, message: str
) -> None:
    monkeypatch.delenv("NL_UNSET_OUT", raising=False)
    text = sample_project.read_text(encoding="utf-8")
    sample_project.write_text(breakage(text), encoding="utf-8")  # type: ignore[operator]

    result = run_cli(["validate", "--config", str(sample_project)])

    assert result.exit_code == 2
    assert f"{sample_project}:" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_build_with_an_unset_variable_writes_nothing(
    sample_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NL_UNSET_OUT", raising=False)
    text = sample_project.read_text(encoding="utf-8")
    sample_project.write_text(
        text.replace("directory: issues", "directory: ${NL_UNSET_OUT}/issues"), encoding="utf-8"
    )
    before = sorted(p.name for p in sample_project.parent.iterdir())

    result = run_cli(["build", "--config", str(sample_project), "--date", "2026-11-24"])

    assert result.exit_code == 2
    line = text.splitlines().index("  directory: issues") + 1
    assert (
        f"{sample_project}:{line}: output.directory: the environment variable NL_UNSET_OUT is "
        "not set; export NL_UNSET_OUT=... and retry" in result.stderr
    )
    assert sorted(p.name for p in sample_project.parent.iterdir()) == before
    assert not (sample_project.parent / "${NL_UNSET_OUT}").exists()


def test_build_expands_a_set_variable(
    sample_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NL_OUT", "published")
    text = sample_project.read_text(encoding="utf-8")
    sample_project.write_text(
        text.replace("directory: issues", "directory: ${NL_OUT}/issues"), encoding="utf-8"
    )

    result = run_cli(["build", "--config", str(sample_project), "--date", "2026-11-24"])

    assert result.exit_code == 0, result.output
    assert (sample_project.parent / "published" / "issues" / "001-2026-11-24").is_dir()


# --- files that hold a secret ----------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="file mode bits are POSIX")
def test_validate_warns_when_others_can_read_the_store(sample_project: Path) -> None:
    store = sample_project.parent / "newsletter.db"
    added = run_cli(["subscribers", "add", "ada@example.org", "--list", "members",
                     "--config", str(sample_project)])  # fmt: skip
    assert added.exit_code == 0, added.output
    store.chmod(0o644)

    result = run_cli(["validate", "--config", str(sample_project)])

    assert result.exit_code == 0, result.output
    assert (
        f"warning: {store} is readable by group and others (mode 0644) but holds the subscriber "
        "list and, unless NEWSLETTER_SECRET is set, the secret that signs unsubscribe links; "
        f"run: chmod 600 {store}"
    ) in result.stderr
    assert "valid." in result.stdout

    store.chmod(0o640)
    assert (
        "readable by group (mode 0640)"
        in run_cli(["validate", "--config", str(sample_project)]).stderr
    )
    store.chmod(0o600)
    quiet = run_cli(["validate", "--config", str(sample_project)])
    assert quiet.exit_code == 0
    assert "newsletter.db" not in quiet.stderr
