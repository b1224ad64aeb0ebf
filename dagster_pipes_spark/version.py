"""The package version (``from dagster_pipes_spark.version import __version__``, as in ``dagster_pipes``)."""

__version__ = "0.2.0"
