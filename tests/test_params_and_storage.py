"""Params loaders (widgets, CLI, auto) and storage backends against the emulator and real SDK."""

import base64
import json
import subprocess
import sys
import warnings

import pytest
from _helpers import external_env, run_pipes, write_script

import dagster_pipes_spark as dps
from dagster_pipes_spark import (
    DagsterPipesError,
    DagsterPipesWarning,
    PipesAutoParamsLoader,
    PipesCliArgsParamsLoader,
    PipesDatabricksNotebookWidgetsParamsLoader,
    PipesDbfsContextLoader,
    PipesUnityCatalogVolumesContextLoader,
    open_dagster_pipes,
)
from dagster_pipes_spark.testing import Emulator, FakeWidgets

CTX = {"path": "/tmp/ctx.json"}
MSGS = {"path": "/tmp/msgs"}


@pytest.fixture
def reset_singleton():
    yield
    dps.PipesContext._instance = None


@pytest.mark.parametrize(
    "widgets",
    [
        FakeWidgets({}),  # widget undefined: InputWidgetNotDefined
        FakeWidgets(
            {"DAGSTER_PIPES_CONTEXT": "", "DAGSTER_PIPES_MESSAGES": ""}
        ),  # job params, empty defaults
        FakeWidgets({"DAGSTER_PIPES_CONTEXT": "  "}),
        type("SdkStub", (), {"get": lambda self, k: {}[k]})(),  # databricks-sdk local stub: KeyError
    ],
    ids=["undefined", "empty-job-params", "blank", "sdk-keyerror"],
)
def test_notebook_outside_dagster_is_a_noop(widgets, reset_singleton):
    loader = PipesDatabricksNotebookWidgetsParamsLoader(widgets)
    assert loader.is_dagster_pipes_process() is False
    with pytest.warns(DagsterPipesWarning, match="not launched by a Dagster"):
        pipes = open_dagster_pipes(params_loader=loader)
    with pipes as p:  # every call is a no-op, never a crash
        p.log.info("x")
        p.report_asset_materialization(metadata={"a": 1})


def test_widgets_loader_reads_params():
    w = FakeWidgets(
        {"DAGSTER_PIPES_CONTEXT": dps.encode_param(CTX), "DAGSTER_PIPES_MESSAGES": dps.encode_param(MSGS)}
    )
    loader = PipesDatabricksNotebookWidgetsParamsLoader(w)
    assert loader.is_dagster_pipes_process()
    assert loader.load_context_params() == CTX and loader.load_messages_params() == MSGS


def test_cli_loader_ignores_other_args_and_accepts_equals_form():
    argv = [
        "--master",
        "local",
        "--dagster-pipes-context=" + dps.encode_param(CTX),
        "pos",
        "--dagster-pipes-messages",
        dps.encode_param(MSGS),
        "--other=1",
    ]
    loader = PipesCliArgsParamsLoader(argv)
    assert loader.is_dagster_pipes_process()
    assert loader.load_context_params() == CTX and loader.load_messages_params() == MSGS
    assert not PipesCliArgsParamsLoader(["--master", "local"]).is_dagster_pipes_process()
    with pytest.raises(DagsterPipesError, match="Missing command-line argument `--dagster-pipes-messages`"):
        PipesCliArgsParamsLoader(["--dagster-pipes-context", dps.encode_param(CTX)]).load_messages_params()


def test_auto_loader_order(monkeypatch):
    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    w = FakeWidgets(
        {
            "DAGSTER_PIPES_CONTEXT": dps.encode_param({"path": "w"}),
            "DAGSTER_PIPES_MESSAGES": dps.encode_param(MSGS),
        }
    )
    auto = PipesAutoParamsLoader(widgets=w, argv=[])
    assert auto.source == "widgets" and auto.load_context_params() == {"path": "w"}
    cli = [
        "--dagster-pipes-context",
        dps.encode_param({"path": "c"}),
        "--dagster-pipes-messages",
        dps.encode_param(MSGS),
    ]
    assert PipesAutoParamsLoader(widgets=w, argv=cli).source == "cli"
    monkeypatch.setenv("DAGSTER_PIPES_CONTEXT", dps.encode_param({"path": "e"}))
    monkeypatch.setenv("DAGSTER_PIPES_MESSAGES", dps.encode_param(MSGS))
    assert PipesAutoParamsLoader(widgets=w, argv=cli).load_context_params() == {"path": "e"}
    assert PipesAutoParamsLoader(widgets=FakeWidgets({}), argv=[]).source == "env"


def test_cli_args_launch_through_dagster(tmp_path):
    """spark-submit / wheel style: params arrive as CLI args among unrelated ones; the default loader finds them."""
    script = write_script(
        tmp_path,
        """
        import sys
        from dagster_pipes import open_dagster_pipes
        with open_dagster_pipes() as pipes:
            pipes.report_asset_materialization(metadata={"argv1": sys.argv[1]})
    """,
    )
    import dagster as dg

    class CliClient(dg.PipesSubprocessClient):
        def run(self, *, context, command, extras=None, env=None):  # type: ignore[override]
            with dg.open_pipes_session(
                context=context,
                extras=extras,
                context_injector=dg.PipesTempFileContextInjector(),
                message_reader=dg.PipesTempFileMessageReader(),
            ) as session:
                args = [a for kv in session.get_bootstrap_cli_arguments().items() for a in kv]
                subprocess.run(
                    [*command, "--app-arg", "7", *args],
                    env={**__import__("os").environ, **(env or {})},
                    check=True,
                )
            return dg.PipesClientCompletedInvocation(session)

    res = run_pipes(script, client_factory=CliClient)
    assert res.success, res.failure
    assert res.materializations["asset_a"].metadata["argv1"].value == "--app-arg"


def test_outside_dagster_script_warns_and_exits_zero(tmp_path):
    script = write_script(
        tmp_path,
        """
        from dagster_pipes import open_dagster_pipes
        with open_dagster_pipes() as pipes:
            pipes.report_asset_materialization(metadata={"a": 1})
            pipes.log.info(pipes.get_extra("x"))
        print("done")
    """,
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DAGSTER_PIPES_")}
    proc = subprocess.run(
        [sys.executable, str(script)], env={**env, **external_env()}, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "done" in proc.stdout
    assert "DagsterPipesWarning" in proc.stderr


# ----------------------------------------------------------------------------- storage


@pytest.fixture(scope="module")
def ws():
    with Emulator(volumes=["main/default/pipes"]) as emulator:
        yield emulator


def _ctx(size: int) -> dict:
    return {"run_id": "r", "asset_keys": ["a"], "extras": {"big": "x" * size}}


@pytest.mark.parametrize("backend", ["sdk", "dbutils", "fuse"])
def test_context_over_1mb_loads(ws, backend, monkeypatch):
    client = ws.workspace_client()
    data = json.dumps(_ctx(1_500_000)).encode()
    with client.dbfs.open(
        "/tmp/big/context.json", write=True, overwrite=True
    ) as f:  # create/add-block: >1 MB
        f.write(data)
    client.files.upload(
        "/Volumes/main/default/pipes/big/context.json", __import__("io").BytesIO(data), overwrite=True
    )
    kw: dict = {}
    if backend == "sdk":
        kw["client"] = client
    elif backend == "dbutils":
        kw["dbutils"] = ws.fake_dbutils()
    else:
        monkeypatch.setenv("DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT", str(ws.dbfs_root))
        monkeypatch.setenv("DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT", str(ws.volumes_root))
    with PipesDbfsContextLoader(**kw).load_context({"path": "/tmp/big/context.json"}) as ctx:
        assert len(ctx["extras"]["big"]) == 1_500_000
    with PipesUnityCatalogVolumesContextLoader(**kw).load_context(
        {"path": "/Volumes/main/default/pipes/big/context.json"}
    ) as ctx:
        assert len(ctx["extras"]["big"]) == 1_500_000


def test_missing_dbfs_context_names_the_path(ws):
    with pytest.raises(DagsterPipesError, match=r"The Pipes context '/tmp/nope/context.json' does not exist"):
        with PipesDbfsContextLoader(client=ws.workspace_client()).load_context(
            {"path": "/tmp/nope/context.json"}
        ):
            pass


def test_oversize_message_for_dbfs_is_a_clear_error(ws, reset_singleton, tmp_path):
    client = ws.workspace_client()
    client.dbfs.mkdirs("/tmp/run1")
    client.dbfs.put(
        "/tmp/run1/context.json",
        contents=base64.b64encode(json.dumps(_ctx(10)).encode()).decode(),
        overwrite=True,
    )
    loader = dps.PipesMappingParamsLoader(
        {
            "DAGSTER_PIPES_CONTEXT": dps.encode_param({"path": "/tmp/run1/context.json"}),
            "DAGSTER_PIPES_MESSAGES": dps.encode_param({"path": "/tmp/run1"}),
        }
    )
    with open_dagster_pipes(
        params_loader=loader,
        context_loader=PipesDbfsContextLoader(client=client),
        message_writer=dps.PipesDbfsMessageWriter(client=client, interval=1),
    ) as pipes:
        pipes.report_custom_message("before")
        with pytest.raises(DagsterPipesError, match="exceeds this transport's chunk limit of 500,000 bytes"):
            pipes.report_custom_message("z" * 600_000)
        pipes.report_custom_message("after")
    chunks = sorted(ws.dbfs_root.joinpath("tmp/run1").glob("*.json"))
    lines = [json.loads(line) for p in chunks if p.stem.isdigit() for line in p.read_text().splitlines()]
    assert [m["params"]["payload"] for m in lines if m["method"] == "report_custom_message"] == [
        "before",
        "after",
    ]
    assert lines[-1]["method"] == "closed"


def test_sdk_chunks_are_published_whole(ws, reset_singleton):
    """Each chunk appears in one request (put), never as a create/add-block stream a reader could catch half-way."""
    client = ws.workspace_client()
    client.dbfs.mkdirs("/tmp/run2")
    client.dbfs.put(
        "/tmp/run2/context.json",
        contents=base64.b64encode(json.dumps(_ctx(10)).encode()).decode(),
        overwrite=True,
    )
    ws.reset_stats()
    loader = dps.PipesMappingParamsLoader(
        {
            "DAGSTER_PIPES_CONTEXT": dps.encode_param({"path": "/tmp/run2/context.json"}),
            "DAGSTER_PIPES_MESSAGES": dps.encode_param({"path": "/tmp/run2"}),
        }
    )
    with warnings.catch_warnings():
        with open_dagster_pipes(
            params_loader=loader,
            context_loader=PipesDbfsContextLoader(client=client),
            message_writer=dps.PipesDbfsMessageWriter(client=client, interval=1),
        ) as pipes:
            for i in range(2000):
                pipes.log.info(f"{i}" * 100)
    stats = ws.stats
    assert (
        stats.get("POST /api/2.0/dbfs/create", 0) == 0 and stats.get("POST /api/2.0/dbfs/add-block", 0) == 0
    )
    assert stats["POST /api/2.0/dbfs/put"] >= 2
