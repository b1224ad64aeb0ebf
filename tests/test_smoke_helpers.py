from _helpers import run_pipes, write_script


def test_run_pipes_roundtrip(tmp_path):
    script = write_script(
        tmp_path,
        """
        from dagster_pipes import open_dagster_pipes
        with open_dagster_pipes() as pipes:
            pipes.log.warning("careful")
            pipes.report_asset_materialization(metadata={"rows": 3})
    """,
    )
    res = run_pipes(script)
    assert res.success, res.failure
    assert res.materializations["asset_a"].metadata["rows"].value == 3
    assert ("WARNING", "careful") in res.logs
