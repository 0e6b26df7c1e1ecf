"""The transaction monitor: filters, totals, keyset pages, CSV, chart, indexes."""

import csv
import html
import io
import re
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
from peewee import PostgresqlDatabase

from cabinet import accounts, monitor, payments
from cabinet.db import db
from cabinet.models import Transaction, utcnow
from tests.helpers import OPERATOR, console_login, new_payment

ORDER_LINK = re.compile(r'/console/transactions/([^"]+)"')
NEXT_LINK = re.compile(r'href="([^"]+)"[^>]*rel="next"')


@pytest.fixture
def many(staff):  # noqa: F811
    """25 transactions of three contracts; groups of five share a created_at."""
    sidorova = accounts.add_contract(
        "2001", "Сидорова А. А.", "pass-2001", instance=staff["instance"]
    )
    owners = [staff["contract"], staff["other"], sidorova]
    base = utcnow().replace(microsecond=0) - timedelta(hours=1)
    made = []
    for index in range(25):
        transaction = new_payment(owners[index % 3], 1000 * (index + 1))
        Transaction.update(created_at=base + timedelta(minutes=index // 5)).where(
            Transaction.id == transaction.id
        ).execute()
        made.append(transaction)
    for transaction in made[:4]:
        payments.apply_status(transaction.order_id, "paid", source="callback")
    return made


def walk(client, url):
    """Follow the monitor's "older" links from a first page; list the order ids."""
    seen, pages = [], 0
    while url:
        page = client.get(url).get_data(as_text=True)
        seen.extend(ORDER_LINK.findall(page.split('id="monitor-table"')[1]))
        following = NEXT_LINK.search(page)
        url = following.group(1).replace("&amp;", "&") if following else None
        pages += 1
    return seen, pages


def test_keyset_pages_show_every_row_once_in_a_stable_order(make_app, many):
    client = make_app(PAGE_SIZE=10).test_client()
    console_login(client, OPERATOR)
    seen, pages = walk(client, "/console/monitor?instance=isp")
    expected = [
        t.order_id
        for t in sorted(
            many,
            key=lambda t: (Transaction.get_by_id(t.id).created_at, t.id),
            reverse=True,
        )
    ]
    assert pages == 3 and seen == expected
    assert walk(client, "/console/monitor?instance=isp")[0] == seen
    assert client.get("/console/monitor?instance=isp&after=nonsense").status_code == 400


def test_filters_and_totals(client, many):
    console_login(client, OPERATOR)
    page = client.get("/console/monitor?instance=isp&q=сидор").get_data(as_text=True)
    shown = set(ORDER_LINK.findall(page))
    assert shown == {t.order_id for t in many[2::3]}
    paid = client.get(
        "/console/monitor?instance=isp&status=paid", headers={"HX-Request": "true"}
    )
    text = paid.get_data(as_text=True)
    assert (
        text.startswith('<div id="monitor-table">')
        and "HX-Request" in paid.headers["Vary"]
    )
    assert set(ORDER_LINK.findall(text)) == {t.order_id for t in many[:4]}
    # Totals of the filtered set: 4 paid, 1000+2000+3000+4000 = 100.00 ₽.
    assert re.search(
        r"Оплачен</span></td><td class=\"num\">4</td>"
        r"<td class=\"num\">100,00</td>",
        summary_of(client, text),
    )
    assert monitor.totals(
        many[0].instance,
        monitor.Filters(utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)),
    ) == [("new", 21, sum(1000 * i for i in range(5, 26))), ("paid", 4, 10000)]
    none = client.get("/console/monitor?instance=isp&kind=recurrent")
    assert "Транзакций нет" in none.get_data(as_text=True)
    old = client.get("/console/monitor?instance=isp&from=2001-01-01&to=2001-01-7")
    assert not ORDER_LINK.findall(old.get_data(as_text=True))
    for bad in (
        "status=bogus",
        "kind=bogus",
        "from=2020-01-02&to=2020-01-01",
        "from=2020-01-01&to=2022-01-01",
        "from=yesterday",
    ):
        assert client.get(f"/console/monitor?instance=isp&{bad}").status_code == 400, (
            bad
        )


def test_filter_state_lives_in_the_url(client, many):
    console_login(client, OPERATOR)
    page = client.get("/console/monitor?instance=isp&q=1001&status=new").get_data(
        as_text=True
    )
    assert 'hx-push-url="true"' in page
    assert 'value="1001"' in page and '<option value="new" selected' in page
    csv_link = html.unescape(
        re.search(r'href="(/console/monitor\.csv\?[^"]+)"', page).group(1)
    )
    assert (
        dict(parse_qsl(urlsplit(csv_link).query)).items()
        >= {"instance": "isp", "q": "1001", "status": "new"}.items()
    )


def test_csv_export_streams_the_filtered_set(client, many):
    console_login(client, OPERATOR)
    response = client.get("/console/monitor.csv?instance=isp&q=сидор")
    assert response.is_streamed and response.mimetype == "text/csv"
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Дата;Заказ;Договор;")
    assert len(lines) == 1 + len(many[2::3])
    first = lines[1].split(";")
    assert first[2:6] == ["2001", "Сидорова А. А.", "Оплата картой", "Новый"]
    assert re.fullmatch(r"\d+\.\d\d", first[6])
    assert "attachment" in response.headers["Content-Disposition"]


def test_csv_export_reads_in_batches(client, many, monkeypatch):
    monkeypatch.setattr(monitor, "CSV_BATCH", 4)
    console_login(client, OPERATOR)
    lines = (
        client.get("/console/monitor.csv?instance=isp")
        .get_data(as_text=True)
        .splitlines()
    )
    assert len(lines) == 26 and len({line.split(";")[1] for line in lines[1:]}) == 25


@pytest.mark.parametrize(
    "query",
    ["", "q=петров", "status=new&q=1", "kind=payment", "status=success", "q=nobody"],
)
def test_the_csv_holds_the_rows_of_the_filtered_view_in_its_order(
    make_app, many, query
):
    client = make_app(PAGE_SIZE=4).test_client()
    console_login(client, OPERATOR)
    shown, _ = walk(client, f"/console/monitor?{query}")
    first = client.get(f"/console/monitor?{query}").get_data(as_text=True)
    total = int(
        re.search(
            r"<tfoot><tr><th>[^<]*</th><th class=\"num\">(\d+)</th>",
            summary_of(client, first),
        ).group(1)
    )
    csv_link = html.unescape(
        re.search(r'href="(/console/monitor\.csv\?[^"]+)"', first).group(1)
    )
    lines = client.get(csv_link).get_data().decode("utf-8-sig").splitlines()
    assert [line.split(";")[1] for line in lines[1:]] == shown
    assert len(shown) == total


def summary_of(client, page):
    """Load the totals and chart the way the page's htmx does, after the page."""
    url = html.unescape(
        re.search(
            r'id="monitor-summary" hx-get="([^"]+)" hx-trigger="load"', page
        ).group(1)
    )
    answer = client.get(url, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def test_the_page_shows_rows_first_and_the_totals_load_after_it(client, many):
    console_login(client, OPERATOR)
    page = client.get("/console/monitor?instance=isp&status=paid&q=1")
    text = page.get_data(as_text=True)
    assert ORDER_LINK.findall(text) and "paid-chart" not in text
    summary = summary_of(client, text)
    assert summary.startswith('<div class="monitor-head" id="monitor-summary">')
    assert 'id="paid-chart"' in summary and "<tfoot>" in summary
    # Without htmx (the <noscript> link) the totals come as a page of their own.
    alone = client.get("/console/monitor/summary?instance=isp&status=paid")
    assert alone.status_code == 200 and "<html" in alone.get_data(as_text=True)
    assert client.get("/console/monitor/summary?instance=nope").status_code == 404
    assert (
        client.get("/console/monitor/summary?instance=isp&status=bogus").status_code
        == 400
    )


@pytest.mark.parametrize(
    "zone, first, moments",
    [
        # No clock change: the day is counted from the seconds since the first midnight.
        (
            "Europe/Moscow",
            date(2026, 3, 1),
            ["2026-03-01 23:59:59", "2026-03-02 00:00:00", "2026-03-03 12:00:00"],
        ),
        # A 23-hour day (clocks go forward on 8 March): one bucket per day's bounds.
        (
            "America/New_York",
            date(2026, 3, 7),
            ["2026-03-07 23:59:59", "2026-03-08 00:00:00", "2026-03-09 00:00:00"],
        ),
    ],
)
def test_daily_sums_fall_on_the_local_day(staff, zone, first, moments):  # noqa: F811
    tz = ZoneInfo(zone)

    def midnight(day):
        return datetime.combine(day, time(), tz).astimezone(UTC).replace(tzinfo=None)

    for n, moment in enumerate(moments):
        transaction = new_payment(staff["contract"], 1000 * 10**n)
        local = datetime.fromisoformat(moment).replace(tzinfo=tz)
        Transaction.update(
            status="paid", created_at=local.astimezone(UTC).replace(tzinfo=None)
        ).where(Transaction.id == transaction.id).execute()
    days = monitor.local_days(first, first + timedelta(days=2), midnight)
    filters = monitor.Filters(start=days[0][1], end=days[-1][2])
    per_status, per_day = monitor.summary(staff["instance"], filters, days)
    assert per_day == [
        (first, 1000),
        (first + timedelta(days=1), 10000),
        (first + timedelta(days=2), 100000),
    ]
    assert per_status == [("paid", 3, 111000)]


@pytest.mark.parametrize(
    "search, status",
    [("сидор", "success"), ("сидор", ""), ("2001", "new"), ("си", ""), ("", "success")],
)
def test_totals_and_chart_of_a_name_filter_are_exact(many, search, status):
    # Every row of Сидорова (contract 2001) is many[2::3]; of them many[2] is paid.
    instance, now = many[0].instance, utcnow()
    days = [
        (date(2026, 1, 1), now - timedelta(days=2), now - timedelta(days=1)),
        (date(2026, 1, 2), now - timedelta(days=1), now + timedelta(minutes=1)),
    ]
    filters = monitor.Filters(days[0][1], days[-1][2], search=search, status=status)
    shown = monitor.STATUS_GROUPS.get(status, (status,)) if status else None
    rows = [
        Transaction.get_by_id(t.id)
        for t in (many[2::3] if search else many)
        if shown is None or Transaction.get_by_id(t.id).status in shown
    ]
    expected = {}
    for row in rows:
        count, amount = expected.get(row.status, (0, 0))
        expected[row.status] = (count + 1, amount + row.amount)
    charted = shown or ("authorized", "paid")
    per_status, per_day = monitor.summary(instance, filters, days)
    assert per_status == [(s, *expected[s]) for s in sorted(expected)]
    assert per_day == [
        (days[0][0], 0),
        (days[1][0], sum(r.amount for r in rows if r.status in charted)),
    ]
    assert sum(count for _, count, _ in per_status) == len(rows) > 0


def test_the_totals_of_a_status_read_its_covering_index(many):
    now = utcnow()
    filters = monitor.Filters(now - timedelta(days=7), now, status="success")
    plan = explain(monitor.summary_query(many[0].instance, filters, []))
    assert "transaction_instance_id_status_created_at_contract_id_amount" in plan, plan
    assert "COVERING INDEX" in plan or "Index Only Scan" in plan, plan


def test_svg_chart_of_daily_paid_totals(client, many):
    console_login(client, OPERATOR)
    page = summary_of(
        client, client.get("/console/monitor?instance=isp").get_data(as_text=True)
    )
    svg = page[page.index('<svg id="paid-chart"') : page.index("</svg>")]
    assert svg.count("<rect") == 7  # one bar per day of the default week
    assert "100,00 ₽" in svg  # today's paid total, in the bar's title


def explain(query):
    """Return the engine's query plan as text."""
    sql, params = query.sql()
    if isinstance(db.obj, PostgresqlDatabase):
        with db.atomic():
            # Tiny tables: ask whether an index can serve the order, not whether
            # it is cheaper than reading the table and sorting it.
            db.execute_sql("SET LOCAL enable_seqscan = off")
            db.execute_sql("SET LOCAL enable_sort = off")
            rows = db.execute_sql("EXPLAIN " + sql, params).fetchall()
    else:
        rows = db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return "\n".join(str(row) for row in rows)


def test_monitor_queries_use_the_keyset_indexes(many):
    instance = many[0].instance
    now = utcnow()
    filters = monitor.Filters(now - timedelta(days=7), now)
    query = (
        monitor.selection(instance, filters)
        .order_by(Transaction.created_at.desc(), Transaction.id.desc())
        .limit(11)
    )
    plan = explain(query)
    assert "transaction_instance_id_created_at_id" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan  # no sort step
    cursor = monitor.encode_cursor(Transaction.get_by_id(many[10].id))
    _, following = monitor.page(monitor.selection(instance, filters), 10)
    assert following
    paged = monitor.selection(instance, filters)
    moment, pk = monitor.decode_cursor(cursor)
    paged = paged.where(
        Transaction.created_at <= moment,
        (Transaction.created_at < moment) | (Transaction.id < pk),
    )
    assert "transaction_instance_id_created_at_id" in explain(
        paged.order_by(Transaction.created_at.desc(), Transaction.id.desc()).limit(11)
    )
    by_status = (
        monitor.selection(
            instance, monitor.Filters(now - timedelta(days=7), now, status="paid")
        )
        .order_by(Transaction.created_at.desc(), Transaction.id.desc())
        .limit(11)
    )
    assert "transaction_instance_id_status_created_at_id" in explain(by_status)


def test_the_name_search_follows_renames_and_reads_its_index(staff):  # noqa: F811
    found = lambda text: {c.number for c in monitor.contracts_matching(text)}  # noqa: E731
    assert found("ИВАНОВ") == found("иванов") == {"1001"}
    assert found("00") >= {"1001"}  # shorter than a trigram: the plain scan
    accounts.add_contract(
        "3001", "Ёжиков Ё. Ё.", "pass-3001", instance=staff["instance"]
    )
    assert found("ёжик") == {"3001"} and found("100%") == set()
    from cabinet.models import Contract

    Contract.update(name="Шмидт Ш. Ш.").where(Contract.number == "3001").execute()
    assert found("ёжик") == set() and found("ШМИДТ") == {"3001"}
    if isinstance(db.obj, PostgresqlDatabase):  # a few rows: the plan proves nothing
        assert "contract_search_trigram" in {i.name for i in db.get_indexes("contract")}
    else:
        assert "contract_search" in explain(monitor.contracts_matching("иванов"))


def test_paging_rows_leaves_the_totals_and_chart_alone(client, many):
    console_login(client, OPERATOR)
    first = client.get("/console/monitor?instance=isp").get_data(as_text=True)
    older = NEXT_LINK.search(first).group(1).replace("&amp;", "&")
    assert 'hx-target="#monitor-rows"' in first
    rows = client.get(
        older, headers={"HX-Request": "true", "HX-Target": "monitor-rows"}
    )
    text = rows.get_data(as_text=True)
    assert text.startswith('<div id="monitor-rows">') and "paid-chart" not in text
    assert ORDER_LINK.findall(text) and "HX-Target" in rows.headers["Vary"]


def test_an_invalid_period_is_an_error_on_the_form_and_shows_nothing_stale(
    client, many
):
    console_login(client, OPERATOR)
    fragment = {"HX-Request": "true", "HX-Target": "monitor-table"}
    shown = client.get("/console/monitor?instance=isp", headers=fragment)
    assert ORDER_LINK.findall(shown.get_data(as_text=True))
    for bad, words in (
        ("from=2026-03-02&to=2026-03-01", "заканчивается раньше, чем начинается"),
        ("from=yesterday", "Это не дата: yesterday."),
        ("from=2020-01-01&to=2022-01-01", "Период — не больше года"),
    ):
        # The fragment that replaces the table is swapped by htmx (a 200): it
        # holds the error and no rows, no totals, no export of another period.
        answer = client.get(f"/console/monitor?instance=isp&{bad}", headers=fragment)
        text = answer.get_data(as_text=True)
        assert answer.status_code == 200, bad
        assert 'id="period-error"' in text and words in html.unescape(text), bad
        assert not ORDER_LINK.findall(text), bad
        assert "monitor-summary" not in text and "monitor.csv" not in text, bad
        page = client.get(f"/console/monitor?instance=isp&{bad}")
        text = page.get_data(as_text=True)
        assert page.status_code == 400 and 'aria-invalid="true"' in text, bad
        assert not ORDER_LINK.findall(text), bad
        summary = client.get(f"/console/monitor/summary?instance=isp&{bad}")
        assert summary.status_code == 400, bad


def chart_of(client, query):
    """The chart's bar amounts of the monitor's summary for a query, and its caption."""
    page = client.get(f"/console/monitor?instance=isp&{query}")
    summary = summary_of(client, page.get_data(as_text=True))
    caption = re.search(r"<figcaption>([^<]+)", summary).group(1)
    return re.findall(r": ([\d\u00a0]+,\d\d) ₽</title>", summary), caption


def test_the_chart_follows_the_status_filter(client, many):
    console_login(client, OPERATOR)
    paid = sum(t.amount for t in many[:4])
    new = sum(t.amount for t in many[4:])
    new_sum = f"{new // 100:,}".replace(",", "\u00a0") + ",00"  # "3 150,00"
    every, caption = chart_of(client, "")
    assert f"{paid // 100},00" in every and new_sum not in every  # credited only
    assert caption.startswith("Оплачено по дням")
    waiting, caption = chart_of(client, "status=new")
    assert new_sum in waiting and f"{paid // 100},00" not in waiting
    assert "Новый" in caption
    # The search narrows the chart too: of 2001's orders only many[2] is paid.
    searched, _ = chart_of(client, "status=paid&q=2001")
    assert f"{many[2].amount // 100},00" in searched
    assert f"{paid // 100},00" not in searched


SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def sheet_rows(body):
    """Read an XLSX's first sheet back: per row, {column letter: (type, text)}."""
    with zipfile.ZipFile(io.BytesIO(body)) as book:
        sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
        styles = book.read("xl/styles.xml").decode()
    rows = []
    for row in sheet.iter(f"{SHEET}row"):
        cells = {}
        for cell in row.iter(f"{SHEET}c"):
            column = re.match(r"[A-Z]+", cell.get("r")).group(0)
            if cell.find(f"{SHEET}f") is not None:
                cells[column] = ("formula", "")
            elif cell.get("t") == "inlineStr":
                cells[column] = ("text", "".join(cell.find(f"{SHEET}is").itertext()))
            else:
                value = cell.find(f"{SHEET}v")
                kind = "number" if cell.get("s") in (None, "0") else "styled"
                cells[column] = (kind, value.text if value is not None else "")
        rows.append(cells)
    return rows, styles


def test_the_xlsx_export_has_typed_cells_in_words(client, many):
    console_login(client, OPERATOR)
    Transaction.update(bill_number="000123", message="=1+2").where(
        Transaction.id == many[2].id
    ).execute()
    answer = client.get("/console/monitor.xlsx?instance=isp&q=сидор")
    assert answer.status_code == 200 and answer.is_streamed
    assert answer.mimetype.endswith("spreadsheetml.sheet")
    assert ".xlsx" in answer.headers["Content-Disposition"]
    rows, styles = sheet_rows(answer.get_data())
    assert rows[0]["A"] == ("text", "Дата")
    assert rows[0]["H"] == ("text", "Номер счёта (BillNumber)")
    assert len(rows) == 1 + len(many[2::3])
    by_order = {row["B"][1]: row for row in rows[1:]}
    paid = by_order[many[2].order_id]
    assert paid["G"] == ("styled", "30")  # 30.00 ₽ a number, formatted as money
    assert paid["H"] == ("text", "000123")  # leading zeros kept: text
    assert paid["E"] == ("text", "Оплата картой") and paid["F"] == ("text", "Оплачен")
    assert paid["K"] == ("text", "=1+2")  # text, never a formula
    kind, serial = paid["A"]  # a date: a day serial with a date format
    assert kind == "styled" and 40000 < float(serial) < 80000
    assert "dd.mm.yyyy hh:mm:ss" in styles and "#,##0.00" in styles
    assert all(row["C"] == ("text", "2001") for row in rows[1:])


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(client, many):
    console_login(client, OPERATOR)
    risky = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\t=1", "\r=1"]
    changed = many[2::3][: len(risky)]
    for transaction, text in zip(changed, risky, strict=True):
        Transaction.update(message=text, approval_code="-1").where(
            Transaction.id == transaction.id
        ).execute()
    body = client.get("/console/monitor.csv?instance=isp&q=сидор").get_data()
    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    cells = {line[1]: line for line in lines[1:]}
    for transaction, text in zip(changed, risky, strict=True):
        assert cells[transaction.order_id][10] == "'" + text
        assert cells[transaction.order_id][8] == "-1"  # a number stays a number
    assert all(re.fullmatch(r"\d+\.\d\d", line[6]) for line in lines[1:])
