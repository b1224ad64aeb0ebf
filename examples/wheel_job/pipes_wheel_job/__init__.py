"""A python_wheel_task entry point (`entry_point = "pipes-wheel-job"`, `package_name = "pipes_wheel_job"`).

Databricks calls it with the task's `parameters`; Dagster appends `--dagster-pipes-*` arguments,
which the default (automatic) params loader picks out while ignoring the job's own arguments.
"""

import argparse

from dagster_pipes_spark import PipesDatabricksContextLoader, PipesDatabricksMessageWriter, open_dagster_pipes


def main() -> None:
    """Entry point: `pipes-wheel-job --table NAME [dagster pipes args]`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", default="inventory")
    args, _ = parser.parse_known_args()
    with open_dagster_pipes(
        context_loader=PipesDatabricksContextLoader(), message_writer=PipesDatabricksMessageWriter()
    ) as pipes:
        items = int(pipes.get_extra("items")) if pipes.is_asset_step and "items" in pipes.extras else 10
        pipes.log.info(f"wheel task building {args.table} with {items} items")
        stock = {f"sku-{i}": (i * 7) % 13 for i in range(items)}
        pipes.report_asset_check("stock_non_negative", passed=min(stock.values()) >= 0)
        pipes.report_asset_materialization(
            metadata={
                "dagster/row_count": len(stock),
                "dagster/table_name": args.table,
                "total_units": sum(stock.values()),
            }
        )


if __name__ == "__main__":
    main()
