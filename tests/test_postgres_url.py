"""usage_ledger/postgres.py: a PostgreSQL ledger's URL never shows its password; connect works
against the real server (tests/pg.py)."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from usage_ledger.postgres import connect, local_name, redacted, safe_message


def test_a_url_that_cannot_be_parsed_shows_nothing_after_its_scheme():
    for url in ("postgresql://ledger:s3cret@[::1/x", "postgresql://ledger:s3cret@db]/x"):
        assert redacted(url) == "postgresql://(a URL that cannot be read)"
        assert "s3cret" not in safe_message(f"bad {url} and s3cret", url)


def test_redacted_removes_the_password_from_the_user_part():
    assert redacted("postgresql://ledger:s3cret@db.example:5432/team") == "postgresql://ledger@db.example:5432/team"
    assert redacted("postgres://ledger:s3cret@db/team") == "postgres://ledger@db/team"
    assert redacted("postgresql://:s3cret@db/team") == "postgresql://db/team"


def test_redacted_removes_password_parameters_and_keeps_the_others():
    url = "postgresql://ledger@db/team?sslmode=require&password=s3cret&sslpassword=k3y"
    assert redacted(url) == "postgresql://ledger@db/team?sslmode=require"


def test_a_url_without_a_password_or_a_sqlite_path_is_unchanged():
    assert redacted("postgresql://ledger@127.0.0.1:5432/team") == "postgresql://ledger@127.0.0.1:5432/team"
    assert redacted("/home/me/.local/share/usage-ledger/ledger.db") == "/home/me/.local/share/usage-ledger/ledger.db"


def test_safe_message_hides_the_password_and_the_url():
    url = "postgresql://ledger:s3cret@db/team"
    assert safe_message(f"cannot reach {url}: password s3cret rejected", url) == \
        "cannot reach postgresql://ledger@db/team: password *** rejected"


def test_local_name_is_a_file_name_without_the_password():
    assert local_name("postgresql://ledger:s3cret@db.example:5432/team") == "postgresql-ledger@db.example-5432-team"
    assert local_name("postgresql://ledger@db.example:5432/team") == local_name("postgresql://ledger:x@db.example:5432/team")


@given(password=st.text(min_size=6), user=st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_no_password_survives_redaction(password, user):
    url = f"postgresql://{user}:{quote(password, safe='')}@db.example:5432/team?password={quote(password, safe='')}"
    assert redacted(url) == f"postgresql://{user}@db.example:5432/team"
    assert local_name(url) == f"postgresql-{user}@db.example-5432-team"


def test_connect_reaches_the_real_server_by_both_url_schemes(pg_server):
    url = pg_server.new_database()
    for u in (url, url.replace("postgresql://", "postgres://", 1)):
        with connect(u) as con:
            assert con.execute("SELECT current_setting('application_name')").fetchone()[0] == "usage-ledger"
