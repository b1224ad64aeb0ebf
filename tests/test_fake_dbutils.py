"""FakeDbutils: the notebook dbutils (fs, widgets, notebook) against the workspace emulator."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

from dagster_pipes_spark.testing import (
    DbutilsError,
    Emulator,
    ExecutionError,
    FakeDbutils,
    FakeWidgets,
    FileInfo,
    InputWidgetNotDefined,
    NotebookExit,
)

MiB = 1024 * 1024
VOLUME = "/Volumes/main/default/pipes"

pytestmark = pytest.mark.databricks_emulator(volumes=["main/default/pipes"])


@pytest.fixture
def ws(databricks_emulator: Emulator) -> Emulator:
    return databricks_emulator


@pytest.fixture
def dbutils(fake_dbutils: FakeDbutils) -> FakeDbutils:
    return fake_dbutils


# ------------------------------------------------------------------------------------- fs


def test_put_head_ls_on_dbfs(ws: Emulator, dbutils: FakeDbutils) -> None:
    assert dbutils.fs.put("dbfs:/tmp/dir/a.txt", "héllo") is True
    assert ws.local_path("/tmp/dir/a.txt").read_bytes() == "héllo".encode()
    assert dbutils.fs.head("/tmp/dir/a.txt") == "héllo"
    assert dbutils.fs.head("/tmp/dir/a.txt", 2) == "h\ufffd"  # maxBytes counts bytes; a cut é is replaced
    dbutils.fs.mkdirs("/tmp/dir/sub")
    listing = dbutils.fs.ls("/tmp/dir")
    assert [(f.path, f.name, f.size) for f in listing] == [
        ("dbfs:/tmp/dir/a.txt", "a.txt", 6),
        ("dbfs:/tmp/dir/sub/", "sub/", 0),
    ]
    assert all(isinstance(f, FileInfo) and f.modificationTime > 0 for f in listing)
    assert dbutils.fs.ls("dbfs:/tmp/dir/a.txt") == [listing[0]]
    assert [f.path for f in dbutils.fs.ls("dbfs:/")] == ["dbfs:/tmp/"]


def test_put_is_not_limited_to_1mb(ws: Emulator, dbutils: FakeDbutils) -> None:
    text = "0123456789abcdef" * (3 * MiB // 16 + 1)
    ws.reset_stats()
    dbutils.fs.put("/big.txt", text)
    assert ws.stats["POST /api/2.0/dbfs/add-block"] == 4  # ≤ 1 MiB blocks, like the real one
    assert "POST /api/2.0/dbfs/put" not in ws.stats
    assert ws.local_path("/big.txt").read_text() == text
    assert len(dbutils.fs.head("/big.txt")) == 65536
    assert dbutils.fs.head("/big.txt", 2 * MiB) == text[: 2 * MiB]  # > 1 MB head reads in pieces


def test_put_overwrite_and_errors(dbutils: FakeDbutils) -> None:
    dbutils.fs.put("/f.txt", "one")
    with pytest.raises(ExecutionError) as info:
        dbutils.fs.put("/f.txt", "two")
    assert "FileAlreadyExistsException" in str(info.value) and "dbfs:/f.txt" in str(info.value)
    assert str(info.value).startswith("An error occurred while calling o")
    dbutils.fs.put("/f.txt", "two", overwrite=True)
    assert dbutils.fs.head("/f.txt") == "two"
    with pytest.raises(
        ExecutionError, match=r"java\.io\.FileNotFoundException: File dbfs:/missing does not exist"
    ):
        dbutils.fs.head("/missing")
    with pytest.raises(ExecutionError, match=r"java\.io\.FileNotFoundException"):
        dbutils.fs.ls("dbfs:/missing")
    dbutils.fs.mkdirs("/d")
    with pytest.raises(ExecutionError, match="Cannot head a directory"):
        dbutils.fs.head("/d")
    with pytest.raises(ExecutionError, match="FileAlreadyExistsException"):
        dbutils.fs.mkdirs("/f.txt/sub")
    with pytest.raises(ExecutionError, match="UnsupportedOperationException"):
        dbutils.fs.ls("s3://bucket/key")
    with pytest.raises(TypeError):
        dbutils.fs.put("/bytes", b"not a str")  # type: ignore[arg-type]


def test_rm_cp_mv(ws: Emulator, dbutils: FakeDbutils) -> None:
    dbutils.fs.put("/src/a.txt", "a")
    dbutils.fs.put("/src/nested/b.txt", "b")
    assert dbutils.fs.cp("/src/a.txt", "/copy.txt")
    assert ws.local_path("/copy.txt").read_text() == "a"
    dbutils.fs.mkdirs("/into")
    dbutils.fs.cp("/src/a.txt", "/into")  # into an existing directory
    assert ws.local_path("/into/a.txt").read_text() == "a"
    with pytest.raises(ExecutionError, match="recurse=True"):
        dbutils.fs.cp("/src", "/dst")
    dbutils.fs.cp("/src", "/dst", recurse=True)
    assert ws.local_path("/dst/nested/b.txt").read_text() == "b"
    assert dbutils.fs.mv("/copy.txt", "/moved.txt")
    assert not ws.local_path("/copy.txt").exists() and ws.local_path("/moved.txt").read_text() == "a"
    with pytest.raises(ExecutionError, match="FileAlreadyExistsException"):
        dbutils.fs.mv("/moved.txt", "/dst/a.txt")
    dbutils.fs.mv("/dst", "/dst2")  # a directory rename within DBFS
    assert ws.local_path("/dst2/nested/b.txt").exists()
    assert dbutils.fs.rm("/nothing-here") is False
    with pytest.raises(ExecutionError, match="non-empty directory"):
        dbutils.fs.rm("/dst2")
    assert dbutils.fs.rm("/dst2", recurse=True) is True
    assert dbutils.fs.rm("/moved.txt") is True
    assert not ws.local_path("/dst2").exists() and not ws.local_path("/moved.txt").exists()


def test_volume_paths_use_the_files_api(ws: Emulator, dbutils: FakeDbutils) -> None:
    ws.reset_stats()
    dbutils.fs.put(f"{VOLUME}/msgs/1.json", '{"a": 1}\n')
    dbutils.fs.put(f"dbfs:{VOLUME}/msgs/2.json", "x" * (2 * MiB))  # no 1 MB limit either
    assert ws.local_path(f"{VOLUME}/msgs/1.json").read_text() == '{"a": 1}\n'
    with pytest.raises(ExecutionError, match="FileAlreadyExistsException"):
        dbutils.fs.put(f"{VOLUME}/msgs/1.json", "again")
    assert dbutils.fs.head(f"{VOLUME}/msgs/1.json", 4) == '{"a"'
    assert [(f.path, f.name, f.size) for f in dbutils.fs.ls(f"{VOLUME}/msgs")] == [
        (f"dbfs:{VOLUME}/msgs/1.json", "1.json", 9),
        (f"dbfs:{VOLUME}/msgs/2.json", "2.json", 2 * MiB),
    ]
    assert [f.path for f in dbutils.fs.ls(VOLUME)] == [f"dbfs:{VOLUME}/msgs/"]
    dbutils.fs.cp(f"{VOLUME}/msgs", "/from-volume", recurse=True)
    assert ws.local_path("/from-volume/1.json").read_text() == '{"a": 1}\n'
    dbutils.fs.mv("/from-volume/1.json", f"{VOLUME}/back.json")
    assert ws.local_path(f"{VOLUME}/back.json").exists() and not ws.local_path("/from-volume/1.json").exists()
    with pytest.raises(ExecutionError, match="non-empty directory"):
        dbutils.fs.rm(f"{VOLUME}/msgs")
    assert dbutils.fs.rm(f"{VOLUME}/msgs", recurse=True)
    assert not ws.local_path(f"{VOLUME}/msgs").exists()
    with pytest.raises(ExecutionError, match="NOT_FOUND"):  # the volume must exist
        dbutils.fs.put("/Volumes/no/such/volume/x", "x")
    assert any(k.endswith("/api/2.0/fs/files") for k in ws.stats)


def test_local_file_paths(ws: Emulator, dbutils: FakeDbutils, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_text("from the driver")
    dbutils.fs.cp(f"file:{local}", "dbfs:/uploaded.txt")
    assert dbutils.fs.head("/uploaded.txt") == "from the driver"
    dbutils.fs.cp("dbfs:/uploaded.txt", f"file:{tmp_path}/down/copy.txt")
    assert (tmp_path / "down" / "copy.txt").read_text() == "from the driver"
    assert [f.name for f in dbutils.fs.ls(f"file:{tmp_path}/down")] == ["copy.txt"]


def test_interoperates_with_the_sdk_and_survives_faults(
    ws: Emulator, dbutils: FakeDbutils, databricks_workspace_client: WorkspaceClient
) -> None:
    with ws.faults(rate=0.4, seed=11):
        for i in range(10):
            dbutils.fs.put(f"/faulty/{i}.json", f"chunk {i}")  # retried transparently
            dbutils.fs.put(f"{VOLUME}/faulty/{i}.json", f"chunk {i}")
        assert [f.name for f in dbutils.fs.ls("/faulty")] == [f"{i}.json" for i in range(10)]
    assert ws.stats["faults"] > 0
    read = databricks_workspace_client.dbfs.read("/faulty/3.json")
    assert base64.b64decode(read.data or "") == b"chunk 3"
    with ws.faults(rate=1.0, statuses=(500,), endpoints=["dbfs/get-status"]):
        with pytest.raises(ExecutionError, match=r"java\.io\.IOException.*INTERNAL_ERROR"):
            dbutils.fs.ls("/faulty")


def test_verbose_output_like_the_real_one(ws: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    dbutils = FakeDbutils(host=ws.url, token=ws.token)
    dbutils.fs.put("/v.txt", "12345")
    dbutils.fs.head("/v.txt", 2)
    assert capsys.readouterr().out == "Wrote 5 bytes.\n[Truncated to first 2 bytes]\n"


def test_without_a_host_only_fs_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    dbutils = FakeDbutils(widgets={"x": "1"})
    assert dbutils.widgets.get("x") == "1"
    with pytest.raises(DbutilsError, match="DATABRICKS_HOST"):
        dbutils.fs.ls("/")


# -------------------------------------------------------------------------------- widgets


def test_widgets_get_undefined_raises_like_the_real_one() -> None:
    widgets = FakeWidgets()
    with pytest.raises(InputWidgetNotDefined) as info:
        widgets.get("DAGSTER_PIPES_CONTEXT")
    assert type(info.value).__name__ == "InputWidgetNotDefined"
    assert "com.databricks.dbutils_v1.InputWidgetNotDefined" in str(info.value)
    assert "DAGSTER_PIPES_CONTEXT" in str(info.value)
    assert isinstance(info.value, ExecutionError)


def test_widgets_bound_values_defaults_and_choices() -> None:
    widgets = FakeWidgets({"DAGSTER_PIPES_CONTEXT": "abc", "n": 3})
    assert widgets.get("DAGSTER_PIPES_CONTEXT") == "abc" and widgets.get("n") == "3"
    widgets.text("n", "0", "N")
    widgets.text("name", "default")
    assert widgets.get("n") == "3"  # bound parameters win over defaults
    assert widgets.get("name") == "default"
    assert widgets.getArgument("missing", "fallback") == "fallback"
    with pytest.raises(InputWidgetNotDefined):
        widgets.getArgument("missing")
    widgets.dropdown("env", "dev", ["dev", "prod"])
    widgets.combobox("free", "anything", ["a", "b"])
    widgets.multiselect("many", "a,b", ["a", "b", "c"])
    with pytest.raises(ExecutionError, match="IllegalArgumentException"):
        widgets.dropdown("bad", "qa", ["dev", "prod"])
    assert widgets.getAll() == {
        "DAGSTER_PIPES_CONTEXT": "abc",
        "n": "3",
        "name": "default",
        "env": "dev",
        "free": "anything",
        "many": "a,b",
    }
    widgets.remove("name")
    with pytest.raises(InputWidgetNotDefined):
        widgets.get("name")
    with pytest.raises(InputWidgetNotDefined):
        widgets.remove("name")
    widgets.removeAll()
    assert widgets.getAll() == {"DAGSTER_PIPES_CONTEXT": "abc", "n": "3"}


def test_stock_widgets_params_loader_sees_the_real_failure_mode() -> None:
    from dagster_pipes import PipesDatabricksNotebookWidgetsParamsLoader, encode_param  # type: ignore[attr-defined]

    outside = PipesDatabricksNotebookWidgetsParamsLoader(FakeWidgets())
    with pytest.raises(InputWidgetNotDefined):  # the stock loader crashes outside Dagster
        outside.is_dagster_pipes_process()
    params = {"path": "/tmp/x/context.json"}
    inside = PipesDatabricksNotebookWidgetsParamsLoader(
        FakeWidgets(
            {"DAGSTER_PIPES_CONTEXT": encode_param(params), "DAGSTER_PIPES_MESSAGES": encode_param({})}
        )
    )
    assert inside.is_dagster_pipes_process()
    assert inside.load_context_params() == params


# ------------------------------------------------------------------------------- notebook


def test_notebook_exit_raises() -> None:
    dbutils = FakeDbutils()
    with pytest.raises(NotebookExit) as info:
        dbutils.notebook.exit("done")
    assert info.value.value == "done" and dbutils.notebook.exit_value == "done"
    assert str(info.value) == "Notebook exited: done"
