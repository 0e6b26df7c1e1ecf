"""Contracts from the ISP's billing by CSV: the format, the report, all or nothing."""

import io
import re
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from cabinet import accounts, contract_import
from cabinet.contract_import import ImportRefused
from cabinet.db import db
from cabinet.errors import Conflict
from cabinet.models import AuditEntry, Contract
from tests.helpers import OPERATOR, console_login

GOOD = (
    "number;name;email;phone;balance;status\n"
    "2001;Сидоров С. С.;sidorov@example.com;8 (916) 123-45-67;-123,45;active\n"
    "2002;Кузнецова А. А.;;;500;blocked\n"
)


def _csv(text, encoding="utf-8"):
    return text.encode(encoding)


def _numbers():
    return sorted(c.number for c in Contract.select())


def test_good_rows_create_contracts_from_the_import(demo):
    report = contract_import.run(_csv(GOOD))
    assert report.counts() == {"created": 2, "updated": 0, "unchanged": 0, "refused": 0}
    first, second = Contract.by_number("2001"), Contract.by_number("2002")
    assert (first.name, first.email, first.phone) == (
        "Сидоров С. С.",
        "sidorov@example.com",
        "+79161234567",
    )
    assert (first.billing_balance, first.source, first.status) == (
        -12345,
        "import",
        "active",
    )
    assert first.billing_balance_at is not None and first.password_hash == ""
    assert second.status == "blocked" and second.email is None
    assert first.balance == 0  # the cabinet's own sum stays the ledger's


def test_rerunning_the_same_file_creates_nothing_and_changes_nothing(demo):
    contract_import.run(_csv(GOOD))
    before = {c.number: c.updated_at for c in Contract.select()}
    report = contract_import.run(_csv(GOOD))
    assert report.counts() == {"created": 0, "updated": 0, "unchanged": 2, "refused": 0}
    assert {c.number: c.updated_at for c in Contract.select()} == before


def test_a_changed_row_updates_only_that_contract(demo):
    contract_import.run(_csv(GOOD))
    generation = Contract.by_number("2001").session_generation
    changed = GOOD.replace("2001;Сидоров С. С.", "2001;Сидоров Семён").replace(
        "500;blocked", "500;active"
    )
    report = contract_import.run(_csv(changed))
    assert (report.updated, report.unchanged) == (2, 0)
    assert Contract.by_number("2001").name == "Сидоров Семён"
    assert Contract.by_number("2001").session_generation == generation
    assert Contract.by_number("2002").status == "active"


def test_blocking_by_import_ends_the_contracts_sessions(demo):
    generation = Contract.by_number("1001").session_generation
    report = contract_import.run(_csv("number,status\n1001,blocked\n"))
    assert report.updated == 1
    contract = Contract.by_number("1001")
    assert contract.status == "blocked"
    assert contract.session_generation == generation + 1
    assert contract.source == "hand"  # the import only updated it


def test_empty_cells_keep_values_except_email_and_phone_which_are_cleared(demo):
    report = contract_import.run(_csv("number;name;email;balance\n1001;;;\n"))
    assert report.updated == 1
    contract = Contract.by_number("1001")
    assert contract.name == "Иванов И. И." and contract.billing_balance is None
    assert contract.email is None


def test_the_same_password_with_a_new_name_keeps_the_sessions(demo):
    generation = Contract.by_number("1001").session_generation
    text = "number,name,password\n1001,Иванов Иван,demo-pass\n"
    assert contract_import.run(_csv(text)).updated == 1
    contract = Contract.by_number("1001")
    assert contract.name == "Иванов Иван"
    assert contract.session_generation == generation
    assert accounts.password_matches(contract, "demo-pass")


def test_a_password_is_hashed_and_checked_against_on_a_rerun(demo):
    text = "number,name,password\n2003,Орлов,s3cret-pass\n1001,,new-pass-1\n"
    assert contract_import.run(_csv(text)).counts()["created"] == 1
    assert accounts.password_matches(Contract.by_number("2003"), "s3cret-pass")
    assert accounts.password_matches(Contract.by_number("1001"), "new-pass-1")
    again = contract_import.run(_csv(text))
    assert (again.unchanged, again.updated) == (2, 0)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251"])
@pytest.mark.parametrize("delimiter", [";", ","])
def test_both_encodings_with_or_without_bom_and_both_delimiters(
    demo, encoding, delimiter
):
    text = GOOD.replace(";", delimiter).replace("-123,45", '"-123,45"')
    if encoding == "cp1251":
        text = text.replace("\n", "\r\n")  # as Excel writes it
    report = contract_import.run(_csv(text, encoding))
    assert (report.created, report.refused) == (2, [])
    assert (report.encoding, report.delimiter) == (encoding, delimiter)
    assert Contract.by_number("2002").name == "Кузнецова А. А."
    assert Contract.by_number("2001").billing_balance == -12345


BAD = (
    "number;name;email;status\n"
    "2001;Сидоров;sidorov@example.com;active\n"
    "2002;Кузнецова;not-an-address;active\n"
    "2001;Сидоров;;active\n"
    "2004;Орлов;;deleted\n"
    "2005;;;active\n"
    "2006;Лишний;;active;extra\n"
    "bad number;Кто-то;;active\n"
)


def _refusals(report):
    return [(r.line, r.field) for r in report.refused]


def test_bad_and_duplicate_rows_refuse_the_file_with_line_and_field(demo):
    report = contract_import.run(_csv(BAD))
    assert _refusals(report) == [
        (3, "email"),
        (4, "number"),
        (5, "status"),
        (6, "name"),
        (7, "line"),
        (8, "number"),
    ]
    assert report.refused[1].reason == "repeats the number of line 2"
    assert not report.written and _numbers() == ["1001", "1002"]


def test_partial_writes_the_good_rows_and_reports_the_bad(demo):
    report = contract_import.run(_csv(BAD), partial=True)
    assert report.written and len(report.refused) == 6
    assert _numbers() == ["1001", "1002", "2001"]


def test_a_dry_run_reports_and_writes_nothing(demo):
    report = contract_import.run(_csv(GOOD), dry_run=True)
    assert report.created == 2 and not report.written
    assert _numbers() == ["1001", "1002"]


def test_instance_links_new_contracts_and_never_moves_linked_ones(demo):
    from cabinet import configurations

    other = configurations.add_instance("other", "Other ISP")
    text = "number,name\n2001,Новый\n1001,Иванов И. И.\n"
    report = contract_import.run(_csv(text), instance_code="other")
    assert (report.created, report.unchanged) == (1, 1)
    assert Contract.by_number("2001").instance_id == other.id
    assert Contract.by_number("1001").instance_id == demo["instance"].id
    with pytest.raises(ImportRefused, match="no module instance"):
        contract_import.run(_csv(text), instance_code="nowhere")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"number;nickname\n1;x\n", "unknown column 'nickname'"),
        (b"number;name;name\n1;x;y\n", "column 'name' is given twice"),
        (b"name;email\nx;a@b.c\n", "no column 'number'"),
        (b"number\n" + b"1" * 5000 + b"\n", "line 2 is longer than 4096"),
        (b"number;name\n\x98\xff;x\n", "neither UTF-8 nor CP1251"),
        (b"number;name\n1;a\x00b\n", "NUL character"),
        (b'number;name\n1;"open quote\n', "line 2: unexpected end of data"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(demo, data, message):
    with pytest.raises(ImportRefused, match=message):
        contract_import.run(data)
    assert _numbers() == ["1001", "1002"]


def test_a_contract_changed_while_the_file_was_read_refuses_the_import(
    demo, monkeypatch
):
    from cabinet import contract_sync

    read = contract_import._existing

    def read_then_change(*args):
        existing = read(*args)
        contract_sync.upsert("1001", {"name": "Изменён через API"}, "api")
        return existing

    monkeypatch.setattr(contract_import, "_existing", read_then_change)
    text = "number,name\n2001,Новый\n1001,Иванов И. И. (биллинг)\n"
    with pytest.raises(Conflict, match="'1001' changed while the file was read"):
        contract_import.run(_csv(text))
    assert _numbers() == ["1001", "1002"]
    assert Contract.by_number("1001").name == "Изменён через API"


def test_more_rows_than_the_limit_refuse_the_file(demo):
    with pytest.raises(ImportRefused, match="more than 2 rows"):
        contract_import.run(_csv("number,name\n1,a\n2,b\n3,c\n"), rows_max=2)


@pytest.fixture
def cli(app, demo, tmp_path):
    runner = app.test_cli_runner()

    def run(text, *options):
        path = tmp_path / "contracts.csv"
        path.write_bytes(_csv(text))
        db.close()
        result = runner.invoke(args=["contract", "import", str(path), *options])
        db.connect(reuse_if_open=True)
        return result

    return run


def test_the_cli_prints_the_report(cli):
    result = cli(GOOD)
    assert result.exit_code == 0, result.output
    assert "2 created, 0 updated, 0 unchanged, 0 refused (written" in result.output
    assert _numbers() == ["1001", "1002", "2001", "2002"]


def test_the_cli_refuses_bad_rows_with_exit_2_and_writes_nothing(cli):
    result = cli(BAD)
    assert result.exit_code == 2
    assert "refused line 3: email: not an e-mail address" in result.stderr
    assert "Error: 6 rows refused, nothing written" in result.stderr
    assert _numbers() == ["1001", "1002"]
    partial = cli(BAD, "--partial")
    assert partial.exit_code == 0 and "1 created" in partial.output
    assert _numbers() == ["1001", "1002", "2001"]


def test_the_cli_dry_run_reports_and_writes_nothing(cli):
    result = cli(GOOD, "--dry-run")
    assert result.exit_code == 0
    assert "2 created, 0 updated, 0 unchanged, 0 refused (dry run" in result.output
    assert _numbers() == ["1001", "1002"]
    refused = cli(BAD, "--dry-run")
    assert refused.exit_code == 2 and "Error: 6 rows refused" in refused.stderr
    assert _numbers() == ["1001", "1002"]


def test_the_cli_refuses_an_unreadable_file_with_exit_2(cli):
    result = cli("number;nickname\n1;x\n")
    assert result.exit_code == 2 and "Error: unknown column" in result.stderr


def _upload(client, text, **flags):
    data = {"file": (io.BytesIO(_csv(text)), "contracts.csv")}
    data.update({name: "y" for name, on in flags.items() if on})
    return client.post(
        "/console/contract-import", data=data, content_type="multipart/form-data"
    )


def _page(answer):
    return re.sub(r"\s+", " ", answer.get_data(as_text=True))


def test_an_admin_imports_from_the_console_and_the_import_is_audited(client, staff):
    console_login(client)
    assert client.get("/console/contract-import").status_code == 200
    dry = _upload(client, GOOD, dry_run=True)
    assert dry.status_code == 200 and 'id="created">2<' in _page(dry)
    assert _numbers() == ["1001", "1002"] and AuditEntry.select().count() == 0
    done = _upload(client, GOOD)
    assert done.status_code == 200 and 'id="created">2<' in _page(done)
    assert _numbers() == ["1001", "1002", "2001", "2002"]
    entry = AuditEntry.get(AuditEntry.action == "contract.import")
    assert entry.after == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "refused": 0,
        "partial": False,
    }


def test_refused_rows_in_the_console_write_nothing_unless_partial(client, staff):
    console_login(client)
    refused = _upload(client, BAD)
    page = _page(refused)
    assert refused.status_code == 400 and 'id="refused">6<' in page
    assert "repeats the number of line 2" in page
    assert _numbers() == ["1001", "1002"]
    partial = _upload(client, BAD, partial=True)
    assert partial.status_code == 200 and 'id="created">1<' in _page(partial)
    assert _numbers() == ["1001", "1002", "2001"]
    unreadable = _upload(client, "number;nickname\n1;x\n")
    assert unreadable.status_code == 400
    assert "unknown column &#39;nickname&#39;" in _page(unreadable)


def test_only_admins_may_import(client, staff):
    console_login(client, OPERATOR)
    assert client.get("/console/contract-import").status_code == 403
    assert _upload(client, GOOD).status_code == 403
    assert _numbers() == ["1001", "1002"]
    assert "contract-import" not in client.get("/console/contracts").text


def test_an_upload_has_its_own_limit_beyond_max_content_length(make_app, staff):
    client = make_app(CONTRACT_IMPORT_MAX_BYTES=1500, MAX_CONTENT_LENGTH=100)
    client = client.test_client()
    console_login(client)
    answer = _upload(client, "number,name\n" + "2001,Имя\n" * 200)
    assert answer.status_code == 413 and _numbers() == ["1001", "1002"]
    assert _upload(client, GOOD).status_code == 200  # larger than 100 bytes


def test_the_upload_needs_the_csrf_token(make_app, staff):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
    client.post(
        "/console/login",
        data={"login": "admin", "password": "admin-password", "csrf_token": token},
    )
    assert _upload(client, GOOD).status_code == 400
    assert _numbers() == ["1001", "1002"]


def test_the_console_shows_source_status_and_the_billing_balance(app, client, staff):
    contract_import.run(_csv(GOOD))
    console_login(client, OPERATOR)
    listing = _page(client.get("/console/contracts"))
    assert "CSV-импорт" in listing and "Вручную" in listing
    assert "Заблокирован" in listing and "-123,45" in listing
    page = _page(client.get("/console/contracts/2002"))
    assert "Заблокирован: не может войти и платить" in page
    at = Contract.by_number("2002").billing_balance_at.replace(tzinfo=UTC)
    local = at.astimezone(ZoneInfo(app.config["TIMEZONE"])).strftime("%d.%m.%Y %H:%M")
    assert f'500,00 ₽ <span class="muted">на {local}</span>' in page
    assert "не известен" in _page(client.get("/console/contracts/1001"))


def test_many_passwords_are_hashed_in_a_pool_of_processes(demo, monkeypatch):
    from werkzeug import security

    monkeypatch.setattr(contract_import, "POOL_FROM", 2)
    # The session's cached stand-in cannot cross to another process; the real one.
    real = security.generate_password_hash
    monkeypatch.setattr(contract_import, "generate_password_hash", real)
    rows = "".join(f"30{n:02d},Абонент {n},pass-{n:04d}\n" for n in range(3))
    report = contract_import.run(_csv("number,name,password\n" + rows))
    assert report.created == 3
    for n in range(3):
        contract = Contract.by_number(f"30{n:02d}")
        assert accounts.password_matches(contract, f"pass-{n:04d}")
    again = contract_import.run(_csv("number,name,password\n" + rows))
    assert again.unchanged == 3  # checked in the pool too
