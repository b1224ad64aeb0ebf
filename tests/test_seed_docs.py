"""Every usage example of the Pipes docs users follow (../shared/seeds) runs verbatim through our library.

The examples are read from the docs at test time (not copied): each ```python file=...``` block is
written to a temp dir; `import dagster_pipes` in the external process resolves to dagster_pipes_spark
(tests/shim), and the orchestrator side is real Dagster 1.13.
"""

import importlib.util
import json
import os
import re
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from _helpers import REPO, SHIM, run_pipes

SEEDS = Path(os.environ.get("DAGSTER_PIPES_SPARK_SEEDS", REPO.parent / "shared" / "seeds"))
_BLOCK = re.compile(r"```python file=(\S+)[^\n]*\n(.*?)```", re.S)


def _examples() -> dict[str, str]:
    if not SEEDS.is_dir():
        return {}
    found: dict[str, str] = {}
    for f in sorted(SEEDS.glob("*.txt")):
        for path, code in _BLOCK.findall(f.read_text()):
            found[path] = textwrap.dedent(code)
    return found


EXAMPLES = _examples()
pytestmark = pytest.mark.skipif(not EXAMPLES, reason=f"Pipes docs not found at {SEEDS}")


@pytest.fixture
def shim_pythonpath(monkeypatch):
    """External processes launched by the verbatim Dagster code import our library as dagster_pipes."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SHIM), str(REPO)]))


def _load_defs(tmp_path: Path, example_dir: str) -> dg.Definitions:
    for name in ("external_code.py", "dagster_code.py"):
        (tmp_path / name).write_text(
            EXAMPLES[f"/guides/dagster/dagster_pipes/subprocess/{example_dir}/{name}"]
        )
    spec = importlib.util.spec_from_file_location(f"dagster_code_{example_dir}", tmp_path / "dagster_code.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.defs


def _materialize(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    nodes: list[Any] = [*(defs.assets or []), *(defs.asset_checks or [])]
    return dg.materialize(nodes, resources=defs.resources, instance=dg.DagsterInstance.ephemeral())


def test_every_documented_example_is_covered():
    subprocess_examples = {p for p in EXAMPLES if "/subprocess/" in p}
    assert len(subprocess_examples) >= 17, sorted(EXAMPLES)


def test_extras_and_env(tmp_path, shim_pythonpath, capfd):
    result = _materialize(_load_defs(tmp_path, "with_extras_env"))
    assert result.success
    out = capfd.readouterr().out
    assert "{'foo': 'bar'}" in out and "my_value" in out


def test_asset_check(tmp_path, shim_pythonpath):
    result = _materialize(_load_defs(tmp_path, "with_asset_check"))
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "no_empty_order_check" and evaluation.passed is True


def test_multi_asset(tmp_path, shim_pythonpath):
    result = _materialize(_load_defs(tmp_path, "with_multi_asset"))
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events() if m.asset_key}
    assert mats["orders"].materialization.metadata["total_orders"] == dg.IntMetadataValue(3)
    assert mats["users"].materialization.metadata["total_users"] == dg.IntMetadataValue(2)


def test_custom_messages(tmp_path, shim_pythonpath):
    result = _materialize(_load_defs(tmp_path, "custom_messages"))
    assert result.success
    df = result.output_for_node("subprocess_asset")
    assert list(df["order_id"]) == [1, 2, 3] and list(df["item_id"]) == [321, 654, 987]


RICH = sorted(p for p in EXAMPLES if "/rich_metadata/" in p)
EXPECTED = {
    "url_metadata": ("url_meta", dg.UrlMetadataValue, "http://example.com"),
    "path_metadata": ("path_meta", dg.PathMetadataValue, "/path/to/file.txt"),
    "notebook_metadata": ("notebook_meta", dg.NotebookMetadataValue, "/path/to/notebook.ipynb"),
    "json_metadata": ("json_meta", dg.JsonMetadataValue, ["item1", "item2", "item3"]),
    "markdown_metadata": ("md_meta", dg.MarkdownMetadataValue, "# Header\nSome **bold** text"),
    "timestamp_metadata": ("timestamp_meta", dg.TimestampMetadataValue, 1234567890.0),
}


@pytest.mark.parametrize("example", RICH, ids=lambda p: Path(p).stem)
def test_rich_metadata(tmp_path, example):
    snippet = EXAMPLES[example]
    # The docs bind `context = ...` as a placeholder for the Pipes context; bind the real one instead.
    body = "\n".join(line for line in snippet.splitlines() if line.strip() != "context = ...")
    script = tmp_path / "ext.py"
    script.write_text(
        "from dagster_pipes import PipesContext, open_dagster_pipes\n"
        "with open_dagster_pipes():\n"
        "    context = PipesContext.get()\n" + textwrap.indent(body, "    ") + "\n"
    )
    res = run_pipes(script, assets=("foo",))
    assert res.success, res.failure
    md = res.materializations["foo"].metadata
    name = Path(example).stem
    if name in EXPECTED:
        key, cls, value = EXPECTED[name]
        assert isinstance(md[key], cls) and md[key].value == value
    elif name == "table_metadata":
        table = md["table_meta"].value
        assert [r.data for r in table.records] == [
            {"column1": "foo", "column2": 1},
            {"column1": "bar", "column2": 2},
        ]
        c1, c2 = table.schema.columns
        assert (c1.name, c1.type, c1.tags, c1.constraints.unique) == (
            "column1",
            "string",
            {"source": "source1"},
            True,
        )
        assert c2.constraints.other == ["min: 0", "max: 100"]
    elif name == "table_schema_metadata":
        cols = md["table_meta"].schema.columns
        assert [c.name for c in cols] == ["column1", "column2"] and cols[0].description == "The first column"
    elif name == "table_column_lineage":
        deps = md["lineage_meta"].lineage.deps_by_column
        assert deps["a"][0].asset_key == dg.AssetKey("upstream") and deps["a"][0].column_name == "column1"
        assert deps["b"][0].column_name == "column2"
    else:  # pragma: no cover - a new example in the docs
        pytest.fail(f"no expectation for {name}")


# --------------------------------------------------------------------------- details & customization

CUSTOM = "/guides/dagster/dagster_pipes/dagster_pipes_details_and_customization/"

_CLOUD_SERVICE = '''
"""A stand-in for the docs' fictional `cloud_service`: a key-value store in a directory."""
import json, os
_ROOT = os.environ["CLOUD_SERVICE_DIR"]
def _p(key): return os.path.join(_ROOT, key.replace("/", "__"))
def write(key, data):
    with open(_p(key), "w") as f: f.write(data)
def read(key):
    with open(_p(key)) as f: return f.read()
METADATA = json.loads(read("METADATA")) if os.path.exists(_p("METADATA")) else {}
'''

_USER_CODE = "def get_data_version():\n    return 'v-user'\n\ndef get_metric():\n    return 'metric-value'\n"


def test_session_lifecycle_external(tmp_path):
    (tmp_path / "user_code.py").write_text(_USER_CODE)
    script = tmp_path / "ext.py"
    script.write_text(EXAMPLES[CUSTOM + "session_lifecycle_external.py"])
    res = run_pipes(script, assets=("some_asset",), env={"PYTHONPATH_EXTRA": ""})
    assert res.success, res.failure
    mat = res.materializations["some_asset"]
    assert mat.metadata["some_metric"] == dg.TextMetadataValue("metric-value")
    assert mat.tags["dagster/data_version"] == "v-user"
    assert ("INFO", "materializing asset some_asset") in res.logs


class _CloudServiceInjector(dg.PipesContextInjector):
    """Orchestrator side for the docs' custom loader (the docs' own injector needs the fictional service)."""

    def __init__(self, root: Path):
        self.root = root

    @contextmanager
    def inject_context(self, context_data):
        (self.root / "ctx-key").write_text(json.dumps(context_data))
        yield {"key": "ctx-key"}

    def no_messages_debug_text(self) -> str:
        return "cloud_service injector"


class _CloudServiceReader(dg.PipesBlobStoreMessageReader):
    """Reads chunks the docs' custom writer stores as JSON strings under `{key_prefix}/{index}.json`."""

    def __init__(self, root: Path):
        super().__init__(interval=1)
        self.root = root

    @contextmanager
    def get_params(self):
        yield {"key_prefix": "msgs"}

    def messages_are_readable(self, params):
        return True

    def download_messages_chunk(self, index, params):
        path = self.root / f"{params['key_prefix']}__{index}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def no_messages_debug_text(self) -> str:
        return "cloud_service reader"


def test_custom_params_context_loader_and_message_writer(tmp_path):
    """The docs' custom params loader, context loader and blob-store message writer, verbatim."""
    (tmp_path / "cloud_service.py").write_text(_CLOUD_SERVICE)
    custom = "\n\n".join(
        EXAMPLES[CUSTOM + name]
        for name in ("custom_bootstrap_loader.py", "custom_context_loader.py", "custom_message_writer.py")
    )
    (tmp_path / "custom_pipes.py").write_text(custom)
    script = tmp_path / "ext.py"
    script.write_text(
        "import json, os, cloud_service\n"
        "from custom_pipes import *\n"
        "from dagster_pipes import open_dagster_pipes\n"
        "with open_dagster_pipes(params_loader=MyCustomParamsLoader(), context_loader=MyCustomCloudServiceContextLoader(),\n"
        "                        message_writer=MyCustomCloudServiceMessageWriter()) as pipes:\n"
        "    pipes.log.info('custom transport ' + pipes.asset_key)\n"
        "    pipes.report_asset_materialization(metadata={'n': 1})\n"
    )

    def client():
        return dg.PipesSubprocessClient(
            context_injector=_CloudServiceInjector(tmp_path), message_reader=_CloudServiceReader(tmp_path)
        )

    # The custom params loader reads METADATA (the "cloud service" bootstrap store), not env vars.
    import dagster._core.pipes.context as pipes_ctx

    original = pipes_ctx.PipesSession.get_bootstrap_env_vars

    def write_metadata(self):
        (tmp_path / "METADATA").write_text(json.dumps(self.get_bootstrap_params()))
        return {}

    pipes_ctx.PipesSession.get_bootstrap_env_vars = write_metadata  # type: ignore[method-assign]
    try:
        res = run_pipes(
            script,
            assets=("custom",),
            client_factory=client,
            env={"CLOUD_SERVICE_DIR": str(tmp_path)},
            cwd_pythonpath=str(tmp_path),
        )
    finally:
        pipes_ctx.PipesSession.get_bootstrap_env_vars = original  # type: ignore[method-assign]
    assert res.success, res.failure
    assert res.materializations["custom"].metadata["n"] == dg.IntMetadataValue(1)
    assert ("INFO", "custom transport custom") in res.logs
