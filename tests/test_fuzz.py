"""Property-based tests of the input boundary: generated tables, good and bad, through
`ScalingModel.specify` and through ``bayescale fit``.

Every generated table is either a valid fit input (all of its rows kept, every array finite and
positive) or rejected with a `DataError`/`SpecError` (both `ValueError` subclasses) whose message
names an offending column and, for a row-level problem, an offending row label. The expected
outcome comes from an independent cell-by-cell oracle (`_problems`), not from the validator.

The package bugs that fuzzing found are pinned at the end as regression tests.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field

import jax
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import bayescale.cli as cli
from bayescale import DataError, ScalingModel, SpecError
from bayescale.data import read_table

LAW = "chinchilla"
NUM_LAW_PARAMS = 5  # E, A, alpha, B, beta: fewer runs than this is rejected
SCALES = ("params", "tokens")
GROUP = "task"

# No example database (hypothesis still keeps small caches in .hypothesis/, not git-ignored yet).
FUZZ = settings(max_examples=200, deadline=None, database=None)
# capsys/monkeypatch are reset by hand between examples (readouterr; env restored at teardown).
FUZZ_WITH_FIXTURES = settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text that is not a number (to_numeric fails, or gives NaN/inf): always a bad numeric cell.
BAD_TEXT = (
    "abc",
    "1e9x",
    "",
    "n/a",
    "7B",
    "<script>alert(1)</script>",
    "∞",
    "1,5",
    "nan",
    "NaN ",
    "inf",
    "-Infinity",
)
# Group labels that must be accepted as they are (through the Python API).
NASTY_LABELS = (
    "<script>alert(1)</script>",
    "&lt;b&gt;",
    "<img src=x onerror=alert(1)>",
    "日本語",
    "🙂",
    "Ω≈ç√",
    "",
    " ",
    "NaN",
    "None",
    "a,b",
    'say "hi"',
    "it's",
    "tab\tsep",
    "line\nbreak",
    "\u200b",
    "0",
)
ROW_PREFIXES = ("run-", "ß", "<td>", "行-", "🙂")


# -- generated tables ---------------------------------------------------------------------------


@dataclass
class Table:
    """A generated table and how it was made (shown by hypothesis when a property fails)."""

    frame: pd.DataFrame
    grouped: bool
    corruptions: list[str] = field(default_factory=list)


def _base_value(draw, column: str) -> float:
    if column == "params":
        return 10 ** draw(st.floats(5, 11))
    if column == "tokens":
        return 10 ** draw(st.floats(7, 13))
    if column == "metric":
        return draw(st.floats(0.01, 0.99))
    return draw(st.floats(1.5, 6.0))  # loss


def _is_number(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def _bad_cell(draw, column: str, value: float) -> object:
    kind = draw(
        st.sampled_from(
            ["nan", "none", "inf", "-inf", "zero", "-zero", "negative", "text"]
            + (["above_one"] if column == "metric" else [])
        )
    )
    return {
        "nan": lambda: float("nan"),
        "none": lambda: None,
        "inf": lambda: math.inf,
        "-inf": lambda: -math.inf,
        "zero": lambda: 0.0,
        "-zero": lambda: -0.0,
        "negative": lambda: -abs(value) if _is_number(value) and value else -1.0,
        "text": lambda: draw(st.sampled_from(BAD_TEXT)),
        "above_one": lambda: draw(st.sampled_from([1.0001, 42.0, 1e30])),
    }[kind]()


def _odd_but_valid_cell(draw, column: str, value: float) -> object:
    """Huge, tiny or integer values; valid except a huge metric."""
    kind = draw(st.sampled_from(["tiny", "huge", "int"]))
    if kind == "tiny":
        return draw(st.sampled_from([1e-30, 3.7e-25, 1e-20]))
    if kind == "huge":
        return draw(st.sampled_from([1e20, 4.2e25, 1e30]))
    # Beyond 1e-30 .. 1e30, see test_scales_spanning_the_float_range_give_finite_log_scales.
    return max(int(value), 1) if column != "metric" else 1


@st.composite
def tables(draw, *, corrupt: bool | None = None) -> Table:
    """Tables of runs with random corruptions.

    ``corrupt=True`` forces at least one cell, column or structural corruption (the table is
    then almost always bad; the tests check with the oracle), ``False`` none, ``None`` either.
    """
    n = draw(st.sampled_from([0, 1, 4, 5, 6, 8, 12, 6, 8, 12]))  # mostly enough rows
    response = draw(st.sampled_from(["loss", "loss", "metric"]))
    grouped = draw(st.booleans())
    columns = [*SCALES, response] + [GROUP]
    data: dict[str, list[object]] = {c: [_base_value(draw, c) for _ in range(n)] for c in columns}
    pool = draw(st.lists(st.one_of(st.sampled_from(NASTY_LABELS), st.text(max_size=8)), min_size=1))
    data[GROUP] = [draw(st.sampled_from(pool)) for _ in range(n)]
    notes: list[str] = []

    # Cell corruptions.
    if corrupt is None:
        num_cells = draw(st.sampled_from([0, 0, 0, 1, 2, 3]))
    else:
        num_cells = draw(st.integers(1 if corrupt else 0, 3 if corrupt else 0)) if n else 0
    for _ in range(num_cells if n else 0):
        column = draw(st.sampled_from(columns))
        row = draw(st.integers(0, n - 1))
        if column == GROUP:
            data[GROUP][row] = draw(st.sampled_from([None, float("nan")]))
        else:
            data[column][row] = _bad_cell(draw, column, data[column][row])
        notes.append(f"bad cell {column}[{row}] = {data[column][row]!r}")
    # Odd but valid values, and numeric columns given as text (as from a CSV read as strings).
    for _ in range(draw(st.integers(0, 3)) if n else 0):
        column = draw(st.sampled_from(columns[:3]))
        row = draw(st.integers(0, n - 1))
        value = data[column][row]
        if isinstance(value, float) and math.isfinite(value) and value > 0:
            data[column][row] = _odd_but_valid_cell(draw, column, data[column][row])
            notes.append(f"odd cell {column}[{row}] = {data[column][row]!r}")
    if n and draw(st.integers(0, 4)) == 0:
        column = draw(st.sampled_from(columns[:3]))
        data[column] = [
            repr(float(v)) if isinstance(v, int | float) and not isinstance(v, bool) else v
            for v in data[column]
        ]
        notes.append(f"{column} as text")

    labels = _row_labels(draw, n)
    frame = pd.DataFrame(data, index=labels)

    # Duplicated runs: exact copies, under a new label or the same one.
    if n and (draw(st.integers(0, 4)) == 0 or (corrupt and draw(st.booleans()))):
        rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2))
        copies = frame.iloc[rows].copy()
        if draw(st.booleans()):
            copies.index = [f"copy-{i}" for i in range(len(rows))]
        frame = pd.concat([frame, copies])
        notes.append(f"duplicated rows {rows}")

    # Column corruptions: drop or rename (never onto an existing name), junk extra columns.
    if draw(st.integers(0, 5)) == 0 or (corrupt and draw(st.integers(0, 2)) == 0):
        column = draw(st.sampled_from(columns))
        new = draw(
            st.sampled_from(
                [None, column.upper(), f" {column}", f"{column}_x", f"{column}\u200b", "列"]
            )
        )
        frame = frame.drop(columns=column) if new is None else frame.rename(columns={column: new})
        notes.append(f"column {column!r} -> {new!r}")
    if draw(st.integers(0, 4)) == 0:
        junk = draw(st.sampled_from(["flops", "notes", "metric" if response == "loss" else "x"]))
        frame[junk] = [
            draw(st.sampled_from([None, "abc", -1.0, math.inf])) for _ in range(len(frame))
        ]
        notes.append(f"junk column {junk!r}")
    if draw(st.integers(0, 19)) == 0:
        frame = pd.DataFrame(index=frame.index)
        notes.append("no columns at all")
    return Table(frame=frame, grouped=grouped, corruptions=notes)


def _row_labels(draw, n: int) -> pd.Index:
    kind = draw(st.sampled_from(["range", "offset", "text", "repeated"]))
    if kind == "range":
        return pd.RangeIndex(n)
    if kind == "offset":
        return pd.Index(range(1000, 1000 + 7 * n, 7))
    prefix = draw(st.sampled_from(ROW_PREFIXES))
    if kind == "text":
        return pd.Index([f"{prefix}{i:03d}" for i in range(n)], name="run")
    return pd.Index([f"{prefix}{i // 2:03d}" for i in range(n)], name="run")


# -- the oracle ---------------------------------------------------------------------------------


def _number(column: str, cell: object) -> float | None:
    """The value of a numeric cell, or None if the validator must reject it."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, str):
        if cell in BAD_TEXT:
            return None
        cell = float(cell)  # only reprs of floats are generated as valid text
    value = float(cell)
    if not math.isfinite(value) or value <= 0:
        return None
    if column == "metric" and value > 1:
        return None
    return value


def _key(column: str, cell: object) -> object:
    if column == GROUP:
        return ("cell", repr(cell)) if _missing_label(cell) else cell
    value = _number(column, cell)
    return ("cell", repr(cell)) if value is None else value


def _missing_label(cell: object) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell))


@dataclass
class Problem:
    """Something the message must point at: a column (and rows), or rows alone."""

    column: str | None
    rows: list[object]
    what: str


def _problems(frame: pd.DataFrame, grouped: bool) -> list[Problem]:
    """Every reason to reject ``frame``, worked out cell by cell."""
    if len(frame) == 0:
        return [Problem(None, [], "empty")]
    response = next((c for c in ("loss", "metric") if c in frame.columns), None)
    required = [*SCALES, response or "loss"] + ([GROUP] if grouped else [])
    problems = [Problem(c, [], "missing column") for c in required if c not in frame.columns]
    present = [c for c in required if c in frame.columns]
    for column in present:
        cells = frame[column].tolist()
        if column == GROUP:
            bad = [
                row for row, cell in zip(frame.index, cells, strict=True) if _missing_label(cell)
            ]
        else:
            bad = [
                row
                for row, cell in zip(frame.index, cells, strict=True)
                if _number(column, cell) is None
            ]
        if bad:
            problems.append(Problem(column, bad, "bad cells"))
    if len(frame) < NUM_LAW_PARAMS:  # whatever else is wrong
        problems.append(Problem(None, list(frame.index), "too few runs"))
    if any(list(frame.columns).count(c) != 1 for c in required):
        return problems
    # Copies of a run, compared on values (a bad cell compares as itself).
    keys = [
        tuple(_key(c, frame[c].iloc[i]) for c in required if c != GROUP)
        + ((_key(GROUP, frame[GROUP].iloc[i]),) if grouped else ())
        for i in range(len(frame))
    ]
    seen: dict[tuple, int] = {}
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
    duplicated = [row for row, key in zip(frame.index, keys, strict=True) if seen[key] > 1]
    if duplicated:
        problems.append(Problem(None, duplicated, "duplicated runs"))
    return problems


def _names_row(message: str, rows: list[object]) -> bool:
    return any(re.search(rf"(?<![\w.-]){re.escape(str(row))}(?!\w|\.\d)", message) for row in rows)


def _points_at(message: str, problem: Problem) -> bool:
    if problem.what == "empty":
        return "empty" in message
    if problem.column is not None and f"'{problem.column}'" not in message:
        return False
    return not problem.rows or _names_row(message, problem.rows)


def _model(grouped: bool) -> ScalingModel:
    return ScalingModel(LAW, group=GROUP if grouped else None)


def _check_accepted(frame: pd.DataFrame, grouped: bool, spec, data) -> None:
    assert data.num_runs == len(frame), "rows silently lost"
    assert list(data.rows) == list(frame.index)
    response = data.response
    assert response == ("loss" if "loss" in frame.columns else "metric")
    expected_y = [_number(response, cell) for cell in frame[response]]
    np.testing.assert_array_equal(data.y, np.array(expected_y, dtype=np.float64))
    for column in SCALES:
        expected = [_number(column, cell) for cell in frame[column]]
        np.testing.assert_array_equal(data.scales[column], np.array(expected, dtype=np.float64))
    arrays = [data.y, *data.scales.values(), *data.log_scales().values()]
    for array in arrays:
        assert array.shape == (len(frame),)
        assert np.all(np.isfinite(array))
    for array in [data.y, *data.scales.values()]:
        assert np.all(array > 0)
    for value in [*data.references.values(), data.response_ref]:
        assert math.isfinite(value) and value > 0
    if grouped:
        assert [data.labels[c] for c in data.codes] == [str(v) for v in frame[GROUP]]
        assert spec.labels == data.labels
    else:
        assert data.labels == () and np.all(data.codes == 0)


# -- the properties -----------------------------------------------------------------------------


@FUZZ
@given(tables())
def test_every_table_is_accepted_whole_or_rejected_with_a_pointed_message(table: Table):
    frame, grouped = table.frame, table.grouped
    before = frame.copy()
    problems = _problems(frame, grouped)
    try:
        spec, data = _model(grouped).specify(frame)
    except (DataError, SpecError) as err:
        message = str(err)
        event(f"rejected: {problems[0].what if problems else 'no problem'}")
        assert isinstance(err, ValueError)
        assert problems, f"valid table rejected: {message}"
        assert message and "\n" not in message
        assert any(_points_at(message, p) for p in problems), (message, problems)
    else:
        event("accepted")
        assert not problems, f"bad table accepted: {problems}"
        _check_accepted(frame, grouped, spec, data)
    pd.testing.assert_frame_equal(frame, before)  # the caller's table is not modified


@FUZZ
@given(tables(corrupt=False))
def test_uncorrupted_tables_with_enough_distinct_runs_are_accepted(table: Table):
    frame, grouped = table.frame, table.grouped
    assume(not _problems(frame, grouped))
    spec, data = _model(grouped).specify(frame)
    _check_accepted(frame, grouped, spec, data)


# Files that are not a table of runs at all, for the CLI.
BAD_FILES = (
    b"",
    b"\n\n\n",
    b"params,tokens,loss\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    "params,tokens,loss,task\n1e6,2e7,3.0,caf\xe9\n".encode("latin-1"),
    b"params,tokens,loss\n1e6,2e7,3.0\n2e6,4e7\n4e6,8e7,2.9,1,2\n",
    b'params,tokens,loss\n1e6,2e7,"3.0\n',
    b"params;tokens;loss\n1e6;2e7;3.0\n",
)


@st.composite
def bad_files(draw) -> tuple[bytes, bool]:
    """Bytes of a CSV file that ``bayescale fit`` must reject, and whether to pass --group."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.sampled_from(BAD_FILES)), False
    if choice == 1:
        return draw(st.binary(max_size=64)), draw(st.booleans())
    table = draw(tables(corrupt=True))
    return table.frame.to_csv(index=False).encode(), table.grouped


@FUZZ_WITH_FIXTURES
@given(bad_files())
def test_cli_fit_on_a_bad_csv_exits_2_with_one_message(capsys, monkeypatch, bad_file):
    jax.devices()  # start JAX with conftest's devices before the CLI sets its own device count
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # restored at teardown
    content, grouped = bad_file
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "runs.csv")
        with open(path, "wb") as handle:
            handle.write(content)
        # Only tables that the validator rejects after the CSV round trip reach the CLI, so that
        # nothing is ever sampled here; the CLI must print that same message.
        try:
            _model(grouped).specify(read_table(path))
        except (DataError, SpecError) as err:
            expected = f"bayescale fit: error: {err}\n"
        else:
            assume(False)
        argv = ["fit", path, "--law", LAW, "--out", os.path.join(tmp, "fit.nc")]
        argv += ["--group", GROUP] if grouped else []
        capsys.readouterr()
        status = cli.main(argv)
        out, err_text = capsys.readouterr()
        assert not os.path.exists(os.path.join(tmp, "fit.nc"))
    assert status == 2
    assert "Traceback" not in err_text
    assert err_text.startswith("bayescale fit: error: ")
    assert err_text.count("bayescale fit: error:") == 1
    assert err_text == expected
    assert out == ""


# -- bugs found by fuzzing, each now a DataError naming column and rows ----------------------------


def _runs(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "params": [1e6 * 2**i for i in range(n)],
            "tokens": [2e7 * 2**i for i in range(n)],
            "loss": [3.0 - 0.1 * i for i in range(n)],
            "task": ["a", "b"] * (n // 2),
        },
        index=[f"run-{i}" for i in range(n)],
    )


@pytest.mark.parametrize(
    "column",
    [
        "params",
        "loss",
        "task",
    ],
)
def test_duplicated_column_name_is_a_data_error(column):
    frame = pd.concat([_runs(), _runs()[[column]]], axis=1)
    with pytest.raises(DataError, match=f"'{column}'"):
        ScalingModel(LAW, group="task").specify(frame)


def test_duplicated_group_column_with_missing_label_is_a_data_error():
    frame = _runs()
    frame.loc["run-3", "task"] = None
    frame = pd.concat([frame, frame[["task"]]], axis=1)
    with pytest.raises(DataError, match="'task'"):
        ScalingModel(LAW, group="task").specify(frame)


def test_too_few_runs_message_shows_plain_row_labels():
    frame = _runs(2).reset_index(drop=True)
    with pytest.raises(DataError) as info:
        ScalingModel(LAW).specify(frame)
    assert "np.int64" not in str(info.value)
    assert "rows 0 and 1" in str(info.value)


def test_duplicated_csv_header_is_a_data_error(tmp_path):
    frame = _runs()
    text = frame.to_csv(index=False).replace("params,", "params,params,", 1)
    lines = text.splitlines()
    lines[1:] = ["1," + line for line in lines[1:]]
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="'params'"):
        ScalingModel(LAW).specify(read_table(path))


def test_integer_beyond_float_range_is_a_data_error():
    frame = _runs().astype({"params": object})
    frame.loc["run-1", "params"] = 10**400
    with pytest.raises(DataError, match="'params'.*run-1"):
        ScalingModel(LAW).specify(frame)


def test_cli_on_integer_beyond_float_range_exits_2(tmp_path, capsys, monkeypatch):
    jax.devices()
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1" + "0" * 400 + ",2e7,3.0\n2000000,4e7,2.9\n")
    status = cli.main(["fit", str(path), "--law", LAW, "--out", str(tmp_path / "fit.nc")])
    assert status == 2
    assert capsys.readouterr().err.startswith("bayescale fit: error: column 'params'")


def test_duplicate_run_with_numeric_text_copy_is_rejected():
    frame = _runs().astype({"params": object})
    frame.loc["run-1"] = frame.loc["run-0"]
    frame.loc["run-1", "params"] = "1000000.0"
    with pytest.raises(DataError, match="more than once"):
        ScalingModel(LAW).specify(frame)


def test_boolean_cell_among_numbers_is_rejected():
    frame = _runs().astype({"params": object})
    frame.loc["run-2", "params"] = True
    with pytest.raises(DataError, match="'params'.*run-2"):
        ScalingModel(LAW).specify(frame)


def test_scales_spanning_the_float_range_give_finite_log_scales():
    frame = _runs(8)
    frame["tokens"] = [1e-300, 2e-300, 1e300] + [2e7 * 2**i for i in range(5)]
    try:
        _, data = ScalingModel(LAW).specify(frame)
    except DataError as err:  # rejecting them, naming the column, is a fix too
        assert "'tokens'" in str(err)
        return
    for values in data.log_scales().values():
        assert np.all(np.isfinite(values))


def test_read_table_keeps_every_row_of_a_written_table(tmp_path):
    """The CSV reader neither drops nor invents rows for tables with nasty labels."""
    labels = list(NASTY_LABELS)
    frame = pd.DataFrame(
        {
            "params": np.geomspace(1e6, 1e9, len(labels)),
            "tokens": np.geomspace(1e7, 1e11, len(labels)),
            "loss": np.linspace(4.0, 2.0, len(labels)),
            "task": labels,
        }
    )
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    assert len(read_table(path)) == len(frame)
