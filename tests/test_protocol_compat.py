"""Same scripts through stock dagster_pipes and through ours: identical messages, accepted by real Dagster."""

from pathlib import Path

import dagster as dg
import pytest
from _helpers import run_pipes

SCRIPT = Path(__file__).parent / "scripts" / "all_methods.py"
ASSETS = ("a", ["b", "c"])
CHECKS = (("a", "c_warn"), ("a", "c_err"))


def _run(impl, *args):
    return run_pipes(
        [__import__("sys").executable, str(SCRIPT), *args],
        assets=ASSETS,
        check_specs=CHECKS,
        extras={"foo": [1, {"bar": None}]},
        impl=impl,
        keep_messages=True,
    )


def _normalized(messages):
    """Messages with the (per-run) run id blanked: the only field allowed to differ."""
    out = []
    for m in messages:
        if m["method"] == "report_custom_message" and isinstance(m["params"]["payload"], dict):
            m = {**m, "params": {"payload": {**m["params"]["payload"], "run_id": "<run>"}}}
        out.append(m)
    return out


@pytest.fixture(scope="module")
def both():
    return _run("stock"), _run("ours")


def test_messages_identical_to_stock(both):
    stock, ours = both
    assert stock.success and ours.success, (stock.failure, ours.failure)
    assert _normalized(ours.messages_file) == _normalized(stock.messages_file)
    methods = [m["method"] for m in ours.messages_file]
    assert methods[0] == "opened" and methods[-1] == "closed"


def test_dagster_received_typed_values(both):
    _, res = both
    md = res.materializations["a"].metadata
    assert isinstance(md["inferred_int"], dg.IntMetadataValue) and md["inferred_int"].value == 7
    assert isinstance(md["inferred_float"], dg.FloatMetadataValue)
    assert isinstance(md["inferred_list"], dg.JsonMetadataValue)
    assert isinstance(md["infer"], dg.JsonMetadataValue) and md["infer"].value == {"k": [1, 2]}
    assert isinstance(md["url"], dg.UrlMetadataValue)
    assert isinstance(md["path"], dg.PathMetadataValue)
    assert isinstance(md["notebook"], dg.NotebookMetadataValue)
    assert isinstance(md["md"], dg.MarkdownMetadataValue)
    assert md["float"].value == 2.5 and md["int"].value == 3 and md["bool"].value is False
    assert isinstance(md["dagster_run"], dg.DagsterRunMetadataValue)
    assert md["asset"].value == dg.AssetKey(["up", "stream"])
    assert isinstance(md["null"], dg.NullMetadataValue)
    table = md["table"].value
    assert table.records[0].data == {"id": 1, "v": "x"}
    col = md["table_schema"].schema.columns[0]
    assert (col.name, col.type, col.description, col.tags) == ("id", "int", "pk", {"pii": "no"})
    assert (
        col.constraints.nullable is False
        and col.constraints.unique is True
        and col.constraints.other == ["> 0"]
    )
    dep = md["lineage"].lineage.deps_by_column["id"][0]
    assert dep.asset_key == dg.AssetKey("up") and dep.column_name == "uid"
    assert md["timestamp"].value == 1700000000.5
    assert res.materializations["a"].tags["dagster/data_version"] == "dv-1"
    assert "b/c" in res.materializations  # a two-part key, echoed as received
    by_name = {c.check_name: c for c in res.checks}
    assert by_name["c_warn"].passed is False and by_name["c_warn"].severity == dg.AssetCheckSeverity.WARN
    assert by_name["c_err"].passed is True and by_name["c_err"].severity == dg.AssetCheckSeverity.ERROR
    assert res.custom_messages[0] == {
        "asset_keys": ["a", "b/c"],
        "extras": {"foo": [1, {"bar": None}]},
        "run_id": res.custom_messages[0]["run_id"],
        "job": "__ephemeral_asset_job__",
        "retry": 0,
    }
    assert res.custom_messages[1] == ["second", 2]
    levels = {msg: lvl for lvl, msg in res.logs}
    assert levels["debug line"] == "DEBUG" and levels["info line 1"] == "INFO"
    assert levels["warning line"] == "WARNING" and levels["error line"] == "ERROR"
    assert levels["critical line"] == "CRITICAL"
    assert not res.warnings  # no "did not receive closed" etc.


def test_failure_carries_exception_identically():
    stock = _run("stock", "raise")
    ours = _run("ours", "raise")
    assert not ours.success and "External execution process failed with code 1" in (ours.failure or "")
    closed = ours.messages_file[-1]
    assert closed == stock.messages_file[-1]
    exc = closed["params"]["exception"]
    assert exc["name"] == "ValueError" and exc["message"] == "ValueError: outer failure\n"
    assert exc["cause"]["name"] == "KeyError" and exc["context"] is None
    assert any("closed with exception" in e for e in ours.engine_events)
    # everything reported before the exception still arrived
    assert _normalized(ours.messages_file[:-1]) == _normalized(stock.messages_file[:-1])
