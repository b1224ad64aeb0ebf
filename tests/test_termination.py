"""Nothing reported is lost when the driver is terminated (SIGTERM) or killed (SIGKILL), repeatedly."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _helpers import external_env, run_pipes, write_script

BODY = """
import os, sys, time, pathlib
from dagster_pipes import open_dagster_pipes{imports}

with open_dagster_pipes({kwargs}) as pipes:
    for i in range(25):
        pipes.log.info(f"msg {{i}}")
    pipes.report_custom_message({{"big": "x" * 20000}})
    pipes.report_asset_materialization(metadata={{"n": 25}})
    {before_signal}
    pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
    try:
        time.sleep(120)
    except Exception:
        pipes.log.error("`except Exception` must not swallow the termination")
        raise
"""


def _signal_when_ready(pid_file: Path, sig: int) -> threading.Thread:
    def run() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if pid_file.exists() and pid_file.read_text():
                os.kill(int(pid_file.read_text()), sig)
                return
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _script(tmp_path: Path, imports: str = "", kwargs: str = "", before_signal: str = "pass") -> Path:
    return write_script(tmp_path, BODY.format(imports=imports, kwargs=kwargs, before_signal=before_signal))


@pytest.mark.parametrize("attempt", range(3))
def test_sigterm_delivers_everything_and_reports_termination(tmp_path, attempt):
    script = _script(tmp_path)
    pid_file = tmp_path / "pid"
    t = _signal_when_ready(pid_file, signal.SIGTERM)
    res = run_pipes([sys.executable, str(script), str(pid_file)], keep_messages=True)
    t.join()
    # The launcher fails the step on the exit status, so results are not yielded; what the
    # orchestrator received is its message stream (and the logs it already recorded).
    assert not res.success and "failed with code -15" in (res.failure or "")
    assert [m for lvl, m in res.logs if m.startswith("msg ")] == [f"msg {i}" for i in range(25)]
    methods = [m["method"] for m in res.messages_file or []]
    assert methods.count("report_asset_materialization") == 1 and methods.count("report_custom_message") == 1
    assert methods[-1] == "closed"
    [closed] = [e for e in res.engine_events if "closed with exception" in e]
    assert "DagsterPipesTerminated" in closed and "SIGTERM" in closed
    assert not any("must not swallow" in m for _, m in res.logs)


def _run_s3_and_signal(tmp_path: Path, moto_s3, sig: int, writer_args: str = "", before_signal: str = "pass"):
    """Run the script with the S3 transport (moto) and send ``sig`` once it has reported everything."""
    from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

    _, client, env = moto_s3
    script = _script(
        tmp_path,
        imports="\nimport boto3\nfrom dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter",
        kwargs="context_loader=PipesS3ContextLoader(boto3.client('s3')), "
        f"message_writer=PipesS3MessageWriter(boto3.client('s3'){writer_args})",
        before_signal=before_signal,
    )
    pid_file = tmp_path / "pid"
    t = _signal_when_ready(pid_file, sig)
    res = run_pipes(
        [sys.executable, str(script), str(pid_file)],
        env=env,
        context_injector=PipesS3ContextInjector(bucket="pipes", client=client),
        message_reader=PipesS3MessageReader(bucket="pipes", client=client, interval=1),
    )
    t.join()
    return res


@pytest.mark.parametrize("attempt", range(2))
def test_sigterm_flushes_buffered_s3_writer(tmp_path, moto_s3, attempt):
    res = _run_s3_and_signal(tmp_path, moto_s3, signal.SIGTERM)
    assert [m for lvl, m in res.logs if m.startswith("msg ")] == [f"msg {i}" for i in range(25)]
    assert any("DagsterPipesTerminated" in e for e in res.engine_events)
    assert not any("did not receive closed" in w for w in res.warnings)


@pytest.mark.parametrize("attempt", range(2))
def test_sigkill_keeps_what_was_reported_a_flush_interval_earlier(tmp_path, moto_s3, attempt):
    """Writer interval 1 s: uploads at most every 3 s; everything reported >3 s before the kill arrives."""
    res = _run_s3_and_signal(
        tmp_path, moto_s3, signal.SIGKILL, ", interval=1", before_signal="time.sleep(4.5)"
    )
    assert not res.success
    assert [m for lvl, m in res.logs if m.startswith("msg ")] == [f"msg {i}" for i in range(25)]
    assert any("did not receive closed" in w for w in res.warnings)  # killed: no `closed`, as expected


def test_exit_status_is_the_signal(tmp_path):
    """Outside any orchestrator: the process still dies *by* SIGTERM (status -15) after flushing."""
    msgs = tmp_path / "messages"
    ctx = tmp_path / "ctx.json"
    ctx.write_text('{"run_id": "r", "asset_keys": ["a"], "extras": {}}')
    import dagster_pipes_spark as dps

    env = {
        **os.environ,
        **external_env(),
        "DAGSTER_PIPES_CONTEXT": dps.encode_param({"path": str(ctx)}),
        "DAGSTER_PIPES_MESSAGES": dps.encode_param({"path": str(msgs)}),
    }
    script = _script(tmp_path)
    pid_file = tmp_path / "pid"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(pid_file)], env=env, stderr=subprocess.PIPE, text=True
    )
    t = _signal_when_ready(pid_file, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    t.join()
    assert proc.returncode == -signal.SIGTERM, err
    import json

    lines = [json.loads(line) for line in msgs.read_text().splitlines()]
    assert lines[0]["method"] == "opened" and lines[-1]["method"] == "closed"
    assert lines[-1]["params"]["exception"]["name"] == "DagsterPipesTerminated"


@pytest.mark.parametrize("ending", ["normal", "uncaught"])
def test_buffered_writer_flushes_at_interpreter_exit(tmp_path, moto_s3, ending):
    """No `with`, no close(): the S3 writer (interval 10 s, nothing uploaded yet) still delivers at exit."""
    from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

    _, client, env = moto_s3
    script = write_script(
        tmp_path,
        f"""
        import boto3
        from dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter, open_dagster_pipes
        pipes = open_dagster_pipes(context_loader=PipesS3ContextLoader(boto3.client("s3")),
                                   message_writer=PipesS3MessageWriter(boto3.client("s3")))
        for i in range(10):
            pipes.log.info(f"msg {{i}}")
        if "{ending}" == "uncaught":
            raise RuntimeError("uncaught at top level")
    """,
    )
    res = run_pipes(
        script,
        env=env,
        context_injector=PipesS3ContextInjector(bucket="pipes", client=client),
        message_reader=PipesS3MessageReader(bucket="pipes", client=client, interval=1),
    )
    assert [m for _, m in res.logs if m.startswith("msg ")] == [f"msg {i}" for i in range(10)]
    assert not any("did not receive closed" in w for w in res.warnings)
    closed_with_exc = [e for e in res.engine_events if "closed with exception" in e]
    if ending == "uncaught":
        assert not res.success and closed_with_exc and "uncaught at top level" in closed_with_exc[0]
    else:
        assert res.success and not closed_with_exc
