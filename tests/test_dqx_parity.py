"""Databricks Labs DQX 0.17 as the oracle of the checks' DQX meaning (``load_checks`` of a DQX rule
file, ``report_spark_checks``, ``apply_spark_checks``, ``split_spark_checks``).

Dagster (the dev venv) materializes an asset whose external process runs
``spark_scripts/dqx_parity_job.py`` in DQX's own environment (runtime ``dqx``: DQX needs a
databricks-sdk the dev venv cannot hold): it builds one seeded table hitting each check function's
edge cases (``spark_scripts/dqx_oracle.py``), applies ``dqx/checks.yml`` (every DQX core check
function: 131 rules, 135 checks) with DQX's engine and with this library on the same DataFrame, once
on classic ``local[1]`` and once on Spark Connect (``remote("local[1]")``), and writes per rule the
row ids each side flags. Rule by rule: the same names, flagged ids, criticality, failed-row counts
(returned and recorded by Dagster), the result columns' shape, the split; and the checks run in one
pass. DQX's verdicts are recorded with the digest of what they depend on (see ``VERDICTS``).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import RunResult, run_pipes
from _runtimes import RuntimeClient, runtime_env, runtime_python

from dagster_pipes_spark import DagsterPipesError
from dagster_pipes_spark.spark import load_checks

TESTS = Path(__file__).parent
SCRIPT = TESTS / "spark_scripts" / "dqx_parity_job.py"
RULES = TESTS / "dqx" / "checks.yml"
ASSET = "checked_table"
MECHANISMS = ("classic", "connect")
#: the ``ref_df_name``s of the rules (DataFrames built by the job); placeholders suffice for the names
REFERENCES = ("keys", "reference", "upstream", "schema_ref")
#: DQX (function, argument) pairs the library refuses at load (argument ``""``: the function with any
#: arguments); the refusal must name the rule, the function and the argument, and the rules using them
#: are left out of the library's side. Empty: every rule of ``dqx/checks.yml`` is honoured with DQX's
#: meaning.
REFUSED: list[tuple[str, str]] = []
#: functions that may each add one Spark action to the single pass (a query / a dataset of their own)
OWN_ACTION = ("sql_query", "compare_datasets")
#: DQX's verdicts are a function of the rules, DQX's side of the job (``dqx_oracle.py``: the data and
#: DQX's engine applying the rules) and DQX's environment alone. They are recorded in ``VERDICTS``
#: with the digest of those three files: while the digest matches, the runs compute only this
#: library's side; otherwise the first run computes DQX's verdicts again (about 10 minutes on
#: 2 cores), keeps them in ``ORACLE_CACHE`` for this machine, and ``test_recorded_verdicts_are_current``
#: fails naming the file to copy over ``VERDICTS``. ``DQX_PARITY_FRESH=1`` recomputes them anyway.
ORACLE = TESTS / "spark_scripts" / "dqx_oracle.py"
VERDICTS = TESTS / "dqx" / "verdicts.json"
ORACLE_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dagster-pipes-spark" / "dqx-oracle"
)
#: this library's side (134 checks: reported, applied, split) takes 2-3 min per mechanism on a
#: 2-core machine running the suite; DQX's, when it runs, ~10 more
TIMEOUT = 600.0 * max(1.0, min(4.0, os.getloadavg()[0] / (os.cpu_count() or 1)))
pytestmark = pytest.mark.timeout(2400)


@dataclass
class Run:
    mechanism: str
    result: RunResult
    output: str  # the external process's stdout + stderr
    data: dict[str, Any]
    oracle: dict[str, Any]  # the output of the run where DQX ran (the first mechanism's)

    @property
    def dqx(self) -> dict[str, Any]:
        if "dqx_error" in self.oracle or "dqx" not in self.oracle:
            pytest.fail(f"DQX itself failed:\n{self.oracle.get('dqx_error')}")
        return dict(self.oracle["dqx"])

    def ours(self, *keys: str) -> dict[str, Any]:
        """Our side's output, failing readably when the step producing ``keys`` raised."""
        if "ours" not in self.data:
            pytest.fail(
                f"the {self.mechanism} job did not finish the library's side:\n{self.result.failure}\n"
                + self.output[-3000:]
            )
        ours = dict(self.data["ours"])
        for step in ("load_error", "report_error", "split_error"):
            if step in ours and any(k in _STEP_KEYS[step] for k in keys):
                pytest.fail(f"{step.replace('_', ' ')} ({self.mechanism}):\n{ours[step]}")
        return ours


_STEP_KEYS = {
    "load_error": ("names", "failed_rows", "passed", "flags", "errors_fields", "split", "rows"),
    "report_error": ("failed_rows", "passed"),
    "split_error": ("flags", "errors_fields", "warnings_fields", "rows", "split"),
}


def _rules() -> list[dict[str, Any]]:
    return list(yaml.safe_load(RULES.read_text()))


def _refused(rule: dict[str, Any]) -> bool:
    check = rule["check"]
    return any(
        check["function"] == function and (not argument or argument in (check.get("arguments") or {}))
        for function, argument in REFUSED
    )


def _our_names() -> list[str]:
    """The check names ``load_checks`` gives the rules it honours (the asset's check specs); none if
    it refuses the file (the job records the same error on the real data)."""
    rules: Any = [r for r in _rules() if not _refused(r)] if REFUSED else RULES
    try:
        return list(load_checks(rules, dataframes=dict.fromkeys(REFERENCES, "placeholder")))
    except Exception:  # noqa: BLE001
        return []


def _expected_names(dqx: dict[str, Any]) -> list[str]:
    """DQX's names of the rules the library honours."""
    rules = _rules()
    assert len(dqx["names_by_rule"]) == len(rules)
    return [
        n
        for rule, names in zip(rules, dqx["names_by_rule"], strict=True)
        if not _refused(rule)
        for n in names
    ]


def _digest() -> str:
    digest = hashlib.sha256()
    for path in (RULES, ORACLE, TESTS.parent / ".ci" / "runtimes" / "dqx.txt"):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _oracle_file() -> Path:
    return ORACLE_CACHE / f"{_digest()}.json"


def _recorded() -> dict[str, Any] | None:
    """The recorded verdicts, when they are DQX's on the current rules, data and environment."""
    if not VERDICTS.is_file():
        return None
    recorded = dict(json.loads(VERDICTS.read_text()))
    return recorded if recorded.get("digest") == _digest() else None


def _cached_oracle() -> dict[str, Any] | None:
    if os.environ.get("DQX_PARITY_FRESH"):
        return None
    recorded = _recorded()
    if recorded is not None:
        return recorded
    path = _oracle_file()
    return dict(json.loads(path.read_text())) if path.is_file() else None


def _run(mechanism: str, python: str, names: list[str], workdir: Path, oracle: bool) -> Run:
    out = workdir / f"{mechanism}.json"
    clients: list[RuntimeClient] = []

    def client() -> RuntimeClient:
        clients.append(RuntimeClient(env=runtime_env(python), timeout=TIMEOUT))
        return clients[-1]

    for attempt in range(2):
        result = run_pipes(
            [python, str(SCRIPT)],
            assets=[ASSET],
            check_specs=[(ASSET, name) for name in names],
            extras={
                "mechanism": mechanism,
                "rules": str(RULES),
                "out": str(out),
                "refused": REFUSED,
                "oracle": oracle,
            },
            client_factory=client,
        )
        # Dagster's file reader (``tail_file``: ``readline`` at the end of the file) can read a
        # message line longer than a page while the external process's one ``write`` of it is
        # still being copied in, and its thread dies on the half line (JSONDecodeError): the run
        # then lacks every later report. The stock writer's lines race the same way. A run whose
        # job finished its side but whose reports Dagster did not take runs once more.
        lost = "did not yield or return expected outputs" in str(result.failure)
        if result.success or not lost or attempt or not out.is_file():
            break
        clients.clear()
    gc.collect()  # Dagster's ephemeral instance holds SQLite connections of this thread: close them here
    output = clients[0].output if clients else ""
    if not out.is_file():
        pytest.fail(f"the {mechanism} job wrote no result:\n{result.failure}\n{output[-4000:]}")
    data = json.loads(out.read_text())
    return Run(mechanism, result, output, data, data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """One Dagster run per mechanism, side by side."""
    python = runtime_python("dqx")
    names = _our_names()
    oracle = _cached_oracle()
    with ThreadPoolExecutor(max_workers=len(MECHANISMS)) as pool:
        futures = {
            # DQX's verdicts do not depend on the mechanism: the first one computes them, if needed
            m: pool.submit(_run, m, python, names, tmp_path_factory.mktemp(m), oracle is None and i == 0)
            for i, m in enumerate(MECHANISMS)
        }
        done = {m: future.result() for m, future in futures.items()}
    if oracle is None:
        oracle = {"dqx": done[MECHANISMS[0]].data["dqx"]} if "dqx" in done[MECHANISMS[0]].data else None
        if oracle is not None:
            oracle["digest"] = _digest()
            _oracle_file().parent.mkdir(parents=True, exist_ok=True)
            _oracle_file().write_text(json.dumps(oracle, indent=0, sort_keys=True))
        else:
            oracle = done[MECHANISMS[0]].data  # holds DQX's error
    for each in done.values():
        each.oracle = oracle
    yield done


@pytest.fixture(params=MECHANISMS)
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    return runs[request.param]


def _levels(flags: dict[str, dict[str, list[Any]]], name: str) -> dict[str, list[Any]]:
    entry = flags.get(name, {})
    return {level: list(entry.get(level, [])) for level in ("error", "warn")}


def _diff(name: str, level: str, theirs: list[Any], ours: list[Any]) -> str | None:
    if theirs == ours:
        return None
    only_dqx = sorted(set(theirs) - set(ours), key=str)
    only_ours = sorted(set(ours) - set(theirs), key=str)
    text = f"{name} [{level}]: DQX {len(theirs)}, ours {len(ours)}"
    text += f"; only DQX flags {only_dqx[:25]}" if only_dqx else ""
    text += f"; only we flag {only_ours[:25]}" if only_ours else ""
    if not only_dqx and not only_ours:
        text += " (same ids, different multiplicity)"
    return text


def test_rules_cover_every_dqx_function(run: Run) -> None:
    """The rule file uses every core check function of the DQX that ran, and DQX names its rules
    uniquely (so a name identifies a rule's flags)."""
    dqx = run.dqx
    used = {rule["check"]["function"] for rule in _rules()}
    assert len(dqx["functions"]) == 57
    assert sorted(set(dqx["functions"]) - used) == []
    assert len(dqx["names"]) == len(set(dqx["names"])) >= 100
    assert dqx["rows"] == 360  # no rule changes the rows


def test_same_rule_names(run: Run) -> None:
    """``load_checks`` names each check as DQX names the rule (given, else generated), in order."""
    assert run.ours("names")["names"] == _expected_names(run.dqx)


def test_same_rows_flagged(run: Run) -> None:
    """Per rule and criticality, the rows ``apply_spark_checks`` flags are the rows DQX flags."""
    dqx, ours = run.dqx, run.ours("flags")
    assert ours["rows"] == dqx["rows"]
    names = _expected_names(dqx)
    diffs = [
        d
        for name in names
        for level in ("error", "warn")
        if (d := _diff(name, level, _levels(dqx["flags"], name)[level], _levels(ours["flags"], name)[level]))
    ]
    extra = sorted(set(ours["flags"]) - set(names))
    assert not diffs and not extra, (
        f"{len(diffs)} of {2 * len(names)} rule levels differ ({run.mechanism}):\n  "
        + "\n  ".join(diffs)
        + (f"\n  names only we put in the result columns: {extra}" if extra else "")
    )


def test_same_failed_rows(run: Run) -> None:
    """``report_spark_checks``' ``failed_rows`` is the number of rows DQX flags for the rule."""
    dqx, ours = run.dqx, run.ours("failed_rows")
    wrong = {
        name: (sum(map(len, _levels(dqx["flags"], name).values())), ours["failed_rows"].get(name))
        for name in _expected_names(dqx)
        if sum(map(len, _levels(dqx["flags"], name).values())) != ours["failed_rows"].get(name)
    }
    assert not wrong, f"(DQX, ours) failed rows differ for {len(wrong)} rules ({run.mechanism}): {wrong}"


def test_criticality_split(run: Run) -> None:
    """Each rule's flags land in the column of its criticality (``_errors`` / ``_warnings``), and
    ``split_spark_checks`` quarantines the rows DQX's ``apply_checks_and_split`` does."""
    dqx, ours = run.dqx, run.ours("flags", "split")
    for name in _expected_names(dqx):
        theirs = {level for level, ids in _levels(dqx["flags"], name).items() if ids}
        mine = {level for level, ids in _levels(ours["flags"], name).items() if ids}
        assert mine <= {"error", "warn"} and (not theirs or not mine or mine == theirs), name
    for part in ("valid", "invalid"):
        diff = _diff(f"split {part}", "rows", dqx["split"][part], ours["split"][part])
        assert diff is None, diff
    assert ours["split"]["valid_columns"] == dqx["split"]["valid_columns"]


def test_result_columns_shaped_like_dqx(run: Run) -> None:
    """``_errors`` and ``_warnings`` are arrays of structs with DQX's fields, names and types."""
    dqx, ours = run.dqx, run.ours("errors_fields", "warnings_fields")
    assert ours["errors_fields"] == dqx["errors_fields"]
    assert ours["warnings_fields"] == dqx["warnings_fields"]
    assert [name for name, _ in dqx["errors_fields"]][:5] == [
        "name",
        "message",
        "columns",
        "filter",
        "function",
    ]


def test_dagster_recorded_dqx_counts(run: Run) -> None:
    """The asset check evaluations Dagster recorded carry DQX's number of flagged rows per rule."""
    dqx = run.dqx
    run.ours("failed_rows")
    recorded = {ev.check_name: ev for ev in run.result.checks}
    names = _expected_names(dqx)
    missing = [name for name in names if name not in recorded]
    assert not missing, f"no evaluation recorded for {missing} ({run.mechanism}): {run.result.failure}"
    wrong = {}
    for name in names:
        expected = sum(map(len, _levels(dqx["flags"], name).values()))
        value = recorded[name].metadata.get("failed_rows")
        got = getattr(value, "value", value)
        if got != expected or recorded[name].passed != (expected == 0):
            wrong[name] = (expected, got, recorded[name].passed)
    assert not wrong, f"(DQX flagged, recorded failed_rows, passed) per rule ({run.mechanism}): {wrong}"


_SUMMARY = re.compile(r"\[spark checks\].*?: (\d+) checks\b.*?; (\d+) Spark action")


def test_one_pass(run: Run) -> None:
    """The 135 checks over one table take one Spark action (+1 fetching failing rows' samples), plus
    at most one per rule running its own query or dataset comparison."""
    run.ours("failed_rows")
    lines = [m for _, text in run.result.logs if (m := _SUMMARY.search(text))]
    assert lines, f"no `[spark checks] ...` summary among the run's logs ({run.mechanism})"
    checks, actions = (int(g) for g in lines[0].groups())
    assert checks == len(_expected_names(run.dqx))
    own = sum(rule["check"]["function"] in OWN_ACTION for rule in _rules() if not _refused(rule))
    assert actions <= 2 + own, f"{actions} Spark actions for {checks} checks ({own} may add their own)"


def test_recorded_verdicts_are_current() -> None:
    """``VERDICTS`` holds DQX's verdicts on the current rules, data and DQX environment (else the
    suite runs DQX itself, and this names the file to record)."""
    assert _recorded() is not None, (
        f"{VERDICTS.name} is not DQX's verdicts on the current {RULES.name}, {ORACLE.name} and DQX"
        f" pin (digest {_digest()}): run this module once (it runs DQX) and copy {_oracle_file()}"
        f" over {VERDICTS}"
    )


def test_refused_rules_are_few() -> None:
    """Each refused pair is used by a rule of the file (the list stays honest), and most rules are
    honoured."""
    rules = _rules()
    for function, argument in REFUSED:
        assert any(_refused(r) and r["check"]["function"] == function for r in rules), (function, argument)
    assert sum(not _refused(r) for r in rules) >= 100


@pytest.mark.parametrize(
    "function,argument", REFUSED or [pytest.param("", "", marks=pytest.mark.skip(reason="none"))]
)
def test_refusals_name_rule_function_and_argument(function: str, argument: str) -> None:
    """A DQX rule the library cannot honour is refused at load, naming the rule, the function and the
    argument."""
    rule = next(
        r
        for r in _rules()
        if r["check"]["function"] == function
        and (not argument or argument in r["check"].get("arguments", {}))
    )
    with pytest.raises(DagsterPipesError) as raised:
        load_checks([rule], dataframes=dict.fromkeys(REFERENCES, "placeholder"))
    message = str(raised.value)
    assert function in message and argument in message and rule.get("name", function) in message
