"""Context data as the real orchestrator builds it: env injector, partitions, asset checks, ops."""

import dagster as dg
import pytest
from _helpers import run_pipes, write_script

CONTEXT_PROBE = """
from dagster_pipes import DagsterPipesError, open_dagster_pipes

def safe(fn):
    try:
        return fn()
    except DagsterPipesError as e:
        return "ERR: " + str(e)

with open_dagster_pipes() as pipes:
    pipes.report_custom_message({
        "is_asset_step": pipes.is_asset_step,
        "asset_key": safe(lambda: pipes.asset_key),
        "code_version": safe(lambda: pipes.code_version),
        "provenance": safe(lambda: pipes.provenance),
        "is_partition_step": pipes.is_partition_step,
        "partition_key": safe(lambda: pipes.partition_key),
        "partition_key_range": safe(lambda: pipes.partition_key_range),
        "partition_time_window": safe(lambda: pipes.partition_time_window),
        "extras": dict(pipes.extras),
    })
    if pipes.is_asset_step and len(pipes.asset_keys) == 1:
        pipes.report_asset_materialization(data_version="dv")
"""


@pytest.mark.parametrize(
    "injector", [dg.PipesEnvContextInjector(), dg.PipesTempFileContextInjector()], ids=["env", "tempfile"]
)
def test_partitioned_context(tmp_path, injector):
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    res = run_pipes(
        write_script(tmp_path, CONTEXT_PROBE),
        context_injector=injector,
        partitions_def=daily,
        partition_key="2024-01-02",
        extras={"x": 1},
    )
    assert res.success, res.failure
    probe = res.custom_messages[0]
    assert probe["partition_key"] == "2024-01-02" and probe["is_partition_step"] is True
    assert probe["partition_key_range"] == {"start": "2024-01-02", "end": "2024-01-02"}
    assert probe["partition_time_window"] == {
        "start": "2024-01-02T00:00:00+00:00",
        "end": "2024-01-03T00:00:00+00:00",
    }
    assert probe["asset_key"] == "asset_a" and probe["extras"] == {"x": 1}
    assert probe["provenance"] is None  # first materialization


def test_unpartitioned_context_errors_are_stock_texts(tmp_path):
    res = run_pipes(write_script(tmp_path, CONTEXT_PROBE), assets=("a", "b"))
    assert res.success, res.failure
    probe = res.custom_messages[0]
    assert probe["asset_key"] == "ERR: `asset_key` is undefined. Current step targets multiple assets."
    assert probe["partition_key"].startswith("ERR: Missing required property: `partition_key` is undefined.")
    assert probe["partition_time_window"].startswith(
        "ERR: Missing required property: `partition_time_window`"
    )
    assert probe["is_partition_step"] is False


def test_asset_check_step_requires_explicit_key(tmp_path):
    script = write_script(
        tmp_path,
        """
        from dagster_pipes import DagsterPipesError, open_dagster_pipes
        with open_dagster_pipes() as pipes:
            assert pipes.asset_keys == []
            try:
                pipes.report_asset_check("my_check", passed=True)
            except DagsterPipesError as e:
                pipes.log.info("no key: " + str(e))
            pipes.report_asset_check("my_check", passed=True, asset_key="my_asset")
    """,
    )

    @dg.asset
    def my_asset() -> None: ...

    @dg.asset_check(asset=my_asset)
    def my_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        import sys

        from _helpers import external_env

        return (
            dg.PipesSubprocessClient()
            .run(
                command=[sys.executable, str(script)],
                context=context.op_execution_context,
                env=external_env(),
            )
            .get_asset_check_result()
        )

    result = dg.materialize([my_asset, my_check], instance=dg.DagsterInstance.ephemeral())
    assert result.success
    [ev] = result.get_asset_check_evaluations()
    assert ev.passed and ev.check_name == "my_check"
