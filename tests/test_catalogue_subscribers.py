"""Bad-input catalogue, subscriber CSV files and commands: a file no row of which can be
used, or a command that cannot apply, is refused naming the file, line or option, and the
store keeps every row it had."""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_input import Breakage, Case, cases, expect_refusal, written
from conftest import copy_project, import_members, make_sample_project, run_cli
from disk_state import project_state, store_rows, tree

IMPORT = ("subscribers", "import", "{project}/bad.csv", "--list", "members")
CSV = "bad.csv"


def csv(content: str | bytes) -> Breakage:
    return written(CSV, content)


def nothing(config: Path) -> None:
    """The command alone is the bad input."""


def imported(*options: str) -> tuple[str, ...]:
    return (*IMPORT, *options)


CASES = cases(
    ("no email column", csv("name,city\nAnn,Leeds\n"), IMPORT, 6,
     "bad.csv: no e-mail column; columns found: 'name', 'city'"),
    ("empty file", csv(""), IMPORT, 6,
     "bad.csv: the file is empty; expected a header row such as 'email,name'"),
    ("blank lines only", csv("\n\n  \n"), IMPORT, 6, "bad.csv: the file is empty"),
    ("header only", csv("email,name\n"), IMPORT, 0,
     "bad.csv -> list 'members': 0 rows; 0 added"),
    ("bad addresses", csv("email\nnot-an-address\nann@\n"), IMPORT, 6,
     "bad.csv:3: 'ann@' is not a valid e-mail address: There must be something after the @"),
    ("address with a space", csv("email\nann smith@example.org\n"), IMPORT, 6,
     "bad.csv:2: 'ann smith@example.org' is not a valid e-mail address"),
    ("display name in the address", csv("email\nAnn <ann@example.org>\n"), IMPORT, 6,
     "bad.csv:2: 'Ann <ann@example.org>' is not a valid e-mail address"),
    ("line break in a name", csv('email,name\nann@example.org,"Ann\r\nBcc: x@example.org"\n'),
     IMPORT, 6, "bad.csv:2: ann@example.org: the name 'Ann\\r\\nBcc: x@example.org' contains a "
     "line break"),
    ("control character in a name", csv("email,name\nann@example.org,Ann\x07\n"), IMPORT, 6,
     "bad.csv:2: ann@example.org: the name 'Ann\\x07' contains a control character (U+0007)"),
    ("line break in an attribute", csv('email,city\nann@example.org,"Leeds\nBcc: x"\n'),
     IMPORT, 6, "bad.csv:2: ann@example.org: the attribute 'city' ('Leeds\\nBcc: x') contains a "
     "line break"),
    ("non-ascii mailbox", csv("email\njosé@example.org\n"), IMPORT, 6,
     "bad.csv:2: josé@example.org: the part before @ has non-ASCII characters (é)"),
    ("address too long", csv(f"email\n{'a' * 250}@example.org\n"), IMPORT, 6,
     "is not a valid e-mail address: The email address is too long"),
    ("too many cells", csv("email,name\nann@example.org,Ann,Leeds\n"), IMPORT, 6,
     "bad.csv:2: expected 2 cells like the header, found 3; quote values that contain commas"),
    ("too few cells", csv("email,name,city\nann@example.org,Ann\n"), IMPORT, 6,
     "bad.csv:2: expected 3 cells like the header, found 2"),
    ("wrong delimiter", csv("email|name\nann@example.org|Ann\n"), IMPORT, 6,
     "bad.csv: no e-mail column; columns found: 'email|name'"),
    ("cell over the csv field limit", csv(f'email,note\nann@example.org,"{"x" * 200_000}"\n'),
     IMPORT, 6, "bad.csv:2: cannot be read as CSV: field larger than field limit (131072)"),
    ("quote never closed", csv('email,name\nann@example.org,"Ann\nbob@example.org,Bob\n'),
     IMPORT, 6, "bad.csv:2: ann@example.org: the name 'Ann\\nbob@example.org,Bob' contains"),
    ("nul in a name", csv("email,name\nann@example.org,A\x00nn\n"), IMPORT, 6,
     "bad.csv:2: ann@example.org: the name 'A\\x00nn' contains a NUL character (U+0000)"),
    ("column twice", csv("email,name,Email\na@example.org,A,b@example.org\n"), IMPORT, 6,
     "bad.csv: the column 'Email' appears twice in the header; rename one"),
    ("bom before a header without email", csv("\ufeffname,city\nAnn,Leeds\n"), IMPORT, 6,
     "bad.csv: no e-mail column; columns found: 'name', 'city'"),
    ("bad encoding named", csv(b"email,name\nzoe@example.org,Zo\xeb\n"),
     imported("--encoding", "utf-8"), 6,
     "bad.csv: not valid utf-8: byte 0xeb at offset 29; pass the file's real encoding"),
    ("unknown encoding", csv("email\nann@example.org\n"), imported("--encoding", "klingon"), 6,
     "bad.csv: unknown encoding 'klingon'; try utf-8, cp1252 or latin-1"),
    ("neither utf-8 nor cp1252", csv(b"email,name\nann@example.org,\x81\x8d\n"), IMPORT, 6,
     "bad.csv: neither UTF-8 nor Windows-1252 (byte 0x81 at offset"),
    ("map names no column", csv("mail\nann@example.org\n"), imported("--map", "e-mail=email"),
     6, "bad.csv: --map e-mail=email: there is no column 'e-mail'; columns found: mail"),
    ("map without equals", csv("email\nann@example.org\n"), imported("--map", "email"), 2,
     "Invalid value for --map: expected NAME=VALUE, got 'email'"),
    ("file missing", nothing, IMPORT, 6, "bad.csv: cannot read the file: No such file"),
    ("file is a folder", lambda config: (config.parent / CSV).mkdir(), IMPORT, 2,
     "bad.csv' is a directory"),
    ("unknown list", csv("email\nann@example.org\n"),
     ("subscribers", "import", "{project}/bad.csv", "--list", "staff"), 6,
     "there is no list named 'staff' (lists: members)"),
    ("add a bad address", nothing, ("subscribers", "add", "ann@", "--list", "members"), 2,
     "'ann@' is not a valid e-mail address"),
    ("add an empty address", nothing, ("subscribers", "add", "", "--list", "members"), 2,
     "error: no e-mail address given"),
    ("add a non-ascii mailbox", nothing,
     ("subscribers", "add", "josé@example.org", "--list", "members"), 2,
     "josé@example.org: the part before @ has non-ASCII characters (é)"),
    ("add a name with a line break", nothing,
     ("subscribers", "add", "ann@example.org", "--name", "Ann\nBcc: x", "--list", "members"),
     2, "ann@example.org: the name 'Ann\\nBcc: x' contains a line break"),
    ("add an attribute without equals", nothing,
     ("subscribers", "add", "ann@example.org", "--attr", "city", "--list", "members"), 2,
     "Invalid value for --attr: expected NAME=VALUE, got 'city'"),
    ("add to an unknown list", nothing,
     ("subscribers", "add", "ann@example.org", "--list", "staff"), 6,
     "there is no list named 'staff' (lists: members)"),
    ("remove someone unknown", nothing, ("subscribers", "remove", "nobody@example.org", "-y"),
     6, "no subscriber 'nobody@example.org' in the store"),
    ("export to a missing folder", nothing,
     ("subscribers", "export", "--list", "members", "-o", "{project}/no/such/dir/out.csv"), 6,
     "no/such/dir/out.csv: cannot write the file: No such file or directory"),
    ("export of an unknown status", nothing,
     ("subscribers", "export", "--list", "members", "--status", "gone"), 2,
     "Invalid value for '--status'"),
)  # fmt: skip


@pytest.fixture(scope="module")
def members_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_members(make_sample_project(tmp_path_factory.mktemp("members")))


@pytest.fixture
def members(members_once: Path, tmp_path: Path) -> Path:
    return copy_project(members_once, tmp_path)


@pytest.mark.parametrize("case", CASES)
def test_a_bad_file_or_command_changes_no_subscriber(members: Path, case: Case) -> None:
    expect_refusal(members, case)


PARTIAL = [
    pytest.param(
        "email,name\nann@example.org,Ann\nANN@example.org,Ann again\n",
        "bad.csv:3: ANN@example.org is a duplicate of line 2; line 2 is kept",
        id="duplicate rows",
    ),
    pytest.param(
        "email\nann@example.org\nnot-an-address\n",
        "bad.csv:3: ",
        id="one bad address among good ones",
    ),
    pytest.param(
        "\ufeffemail;name\nann@example.org;Ann\nann@example.org;Ann\n",
        "bad.csv:3: ann@example.org is a duplicate of line 2",
        id="bom and semicolons with a duplicate",
    ),
]


@pytest.mark.parametrize(("content", "names"), PARTIAL)
def test_unusable_rows_are_named_and_only_the_good_rows_are_imported(
    members: Path, content: str, names: str
) -> None:
    """A file with some usable rows imports those (exit 0) and names each row it left out."""
    project = members.parent
    (project / CSV).write_text(content, encoding="utf-8")
    before = project_state(project)
    result = run_cli([*(p.replace("{project}", str(project)) for p in IMPORT), "--config",
                      str(members)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert names in result.output
    assert tree(project) == before.files
    added = {row[1] for row in store_rows(project / "newsletter.db")["subscribers"]} - {
        row[1] for row in before.store["subscribers"]
    }
    assert added == {"ann@example.org"}
