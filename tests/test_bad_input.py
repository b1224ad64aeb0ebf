"""Bad input gets a DagsterPipesError naming the problem at the call site, and nothing reported is lost."""

import subprocess
import sys
from contextlib import contextmanager

import dagster as dg
from _helpers import external_env, run_pipes, write_script

BAD_CALLS = """
import logging
from dagster_pipes import DagsterPipesError, open_dagster_pipes

errors = {}

def attempt(name, fn):
    try:
        fn()
        errors[name] = None
    except DagsterPipesError as e:
        errors[name] = str(e)

with open_dagster_pipes() as pipes:
    pipes.log.info("before")
    pipes.report_custom_message("first")
    mat = pipes.report_asset_materialization
    attempt("not_serializable", lambda: mat(metadata={"x": object()}))
    attempt("unknown_type", lambda: mat(metadata={"x": {"raw_value": 1, "type": "integer"}}))
    attempt("half_typed", lambda: mat(metadata={"x": {"raw_value": 1}}))
    attempt("float_from_str", lambda: mat(metadata={"x": {"raw_value": "1", "type": "float"}}))
    attempt("out_of_scope", lambda: mat(asset_key="nope"))
    attempt("bad_data_version", lambda: mat(data_version=3))
    attempt("bad_severity", lambda: pipes.report_asset_check("c", True, severity="INFO"))
    attempt("bad_passed", lambda: pipes.report_asset_check("c", "yes"))
    attempt("custom_not_json", lambda: pipes.report_custom_message({"o": object()}))
    attempt("bad_stream", lambda: pipes.log_external_stream("stdlog", "x"))
    attempt("missing_extra", lambda: pipes.get_extra("nope"))
    logging.addLevelName(25, "NOTICE")
    pipes.log.log(25, "custom level")
    pipes.log.log(5, "below debug")
    mat(metadata={"ok": {"raw_value": 1, "type": "float"}})
    attempt("second_materialization", lambda: mat(metadata={"ok": 2}))
    pipes.report_asset_check("c", True)
    attempt("second_check", lambda: pipes.report_asset_check("c", False))
    pipes.report_custom_message(errors)
"""


def test_bad_calls_raise_clear_errors_and_lose_nothing(tmp_path):
    res = run_pipes(write_script(tmp_path, BAD_CALLS), assets=("a",), check_specs=(("a", "c"),))
    assert res.success, res.failure
    assert res.custom_messages[0] == "first"
    errors = res.custom_messages[1]
    expect = {
        "not_serializable": "value for key `x`",
        "unknown_type": "unknown metadata type 'integer'",
        "half_typed": "missing ['type']",
        "float_from_str": "type `float` needs a number",
        "out_of_scope": "Expected one of `['a']`, got `nope`",
        "bad_data_version": "data_version",
        "bad_severity": '"WARN" or "ERROR"',
        "bad_passed": "passed",
        "custom_not_json": "not JSON-serializable",
        "bad_stream": "stdlog",
        "missing_extra": "Extra `nope` is undefined",
        "second_materialization": "already been materialized",
        "second_check": "already reported",
    }
    for name, fragment in expect.items():
        assert errors[name] and fragment in errors[name], (name, errors[name])
    assert res.materializations["a"].metadata["ok"] == dg.FloatMetadataValue(1.0)
    [check] = res.checks
    assert check.passed is True
    assert ("INFO", "before") in res.logs and ("INFO", "custom level") in res.logs
    assert ("DEBUG", "below debug") in res.logs
    assert not [e for e in res.engine_events if "framework exception" in e]


def test_malformed_bootstrap_payload(tmp_path):
    script = write_script(
        tmp_path,
        """
        from dagster_pipes import open_dagster_pipes
        with open_dagster_pipes():
            pass
    """,
    )
    env = {
        **external_env(),
        "PATH": "/usr/bin:/bin",
        "DAGSTER_PIPES_CONTEXT": "%%not-base64%%",
        "DAGSTER_PIPES_MESSAGES": "eJyrVipILMlQslJQ0i/JLdCvUKoFADYYBa8=",
    }
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "DagsterPipesError: Malformed Pipes bootstrap value '%%not-base64%%': not base64" in proc.stderr


class _MissingFileInjector(dg.PipesContextInjector):
    @contextmanager
    def inject_context(self, context_data):
        yield {"path": "/nonexistent/dir/context.json"}

    def no_messages_debug_text(self) -> str:
        return "missing-file injector"


def test_missing_context_file_is_reported_to_dagster(tmp_path):
    script = write_script(
        tmp_path,
        """
        from dagster_pipes import open_dagster_pipes
        with open_dagster_pipes() as pipes:
            pipes.report_asset_materialization()
    """,
    )
    res = run_pipes(script, context_injector=_MissingFileInjector())
    assert not res.success
    [event] = [e for e in res.engine_events if "closed with exception" in e]
    assert "context file '/nonexistent/dir/context.json' does not exist" in event
