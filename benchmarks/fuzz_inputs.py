"""Fuzz the input boundary: generated tables of runs through the validator and ``bayescale fit``.

What it does
------------
Generates ``--cases`` tables of runs (columns ``params``, ``tokens``, ``loss`` or ``metric``, an
optional group column ``task``) with numpy's ``Generator``, reproducibly from ``--seed``, and
random corruptions: NaN, None, inf, -inf, zero, -0.0 and negative values, text in numeric columns
("abc", "1e9x", "", HTML...), booleans, integers beyond float range, huge and tiny magnitudes
(1e-30 .. 1e30, and a few spanning 1e-300 .. 1e300), numeric columns given as text, duplicated
runs (exact copies, and copies with one cell as text), unicode / HTML / control characters in
group labels and missing labels, dropped, renamed and duplicated column names, junk extra columns,
empty tables, tables without columns, single rows and too few rows, and non-default indexes
(offset integers, unicode and HTML labels, repeated labels).

Each case goes through the validator, ``ScalingModel("chinchilla", group=...).specify(frame)``,
and its outcome is checked against an independent, cell-by-cell oracle (`problems`):

- accepted: every row kept, values as given, every array (and ``log_scales()``) finite and > 0;
- rejected: a `DataError`/`SpecError` whose message names an offending column and, for row-level
  problems, an offending row label;
- crashed: any other exception.

Every case that is not accepted (rejected or crashed) is also written to a CSV in a temporary
directory and run through the CLI in-process, ``bayescale.cli.main(["fit", csv, "--law",
"chinchilla", "--out", ...])``, with stdout and stderr captured: it must return 2 and print one
message, ``bayescale fit: error: <the validator's message for that CSV>``; an exception escaping
``main`` is a traceback. To make sure that nothing is ever sampled, the CSV is first read back with
``read_table`` and validated; a CSV that turns out valid (a rare table that is only bad in memory)
is not run. ``--files`` more cases are malformed files (empty, binary, ragged, truncated...) run
through the CLI only.

Prints machine information, a markdown table of counts, crashes and accepted bad inputs by kind
(with one reproducer each), and the distinct error messages deduplicated by template (row labels,
numbers, quoted values and lists replaced by placeholders) with their counts. Exits with status 1
when any "must be 0" count is not 0.

How to run (from the repository root; 1 to 3 minutes for 10,000 cases on 2 cores)::

    python benchmarks/fuzz_inputs.py --cases 10000 --seed 0
    python benchmarks/fuzz_inputs.py --cases 500 --files 50   # smoke test
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import functools
import io
import math
import os
import platform
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bayescale  # noqa: E402
import bayescale.cli as cli  # noqa: E402
from bayescale import DataError, ScalingModel, SpecError  # noqa: E402
from bayescale.data import read_table  # noqa: E402

LAW = "chinchilla"
NUM_LAW_PARAMS = 5
SCALES = ("params", "tokens")
GROUP = "task"
COLUMN_NAMES = ("params", "tokens", "loss", "metric", "task")
PREFIX = "bayescale fit: error: "

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
    "١٢٣",
    "0x10",
    "1_000",
)
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
    "NA",
    "a,b",
    'say "hi"',
    "it's",
    "tab\tsep",
    "line\nbreak",
    "cr\rlf",
    "\u200b",
    "0",
    "01",
    "1.0",
    "True",
)
CODEPOINTS = ((0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x4E00, 0x4FFF), (0x1F600, 0x1F64F))
ROW_PREFIXES = ("run-", "ß", "<td>", "行-", "🙂")
RENAMES = ("{c}_x", "{C}", " {c}", "{c}\u200b", "<b>{c}</b>", "列")

BAD_FILES = (
    b"",
    b"\n\n\n",
    b"params,tokens,loss\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    "params,tokens,loss,task\n1e6,2e7,3.0,caf\xe9\n".encode("latin-1"),
    b"params,tokens,loss\n1e6,2e7,3.0\n2e6,4e7\n4e6,8e7,2.9,1,2\n",
    b'params,tokens,loss\n1e6,2e7,"3.0\n',
    b"params;tokens;loss\n1e6;2e7;3.0\n",
    b"\xef\xbb\xbfparams,tokens\n1,2\n",
    b"<html><body>not a csv</body></html>\n",
)


# -- generation ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One generated table, whether the model groups by ``task``, and what was done to it."""

    frame: pd.DataFrame
    grouped: bool
    kinds: list[str]


def _text(rng: np.random.Generator) -> str:
    low, high = CODEPOINTS[rng.integers(len(CODEPOINTS))]
    return "".join(chr(int(c)) for c in rng.integers(low, high + 1, rng.integers(0, 11)))


def _label(rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return NASTY_LABELS[rng.integers(len(NASTY_LABELS))]
    return _text(rng)


def _is_number(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def _bad_cell(rng: np.random.Generator, column: str, value: float) -> tuple[object, str]:
    kinds = ["nan", "none", "inf", "-inf", "zero", "-zero", "negative", "text", "bool", "bigint"]
    weights = [12, 12, 8, 8, 10, 4, 12, 24, 2, 2]
    if column == "metric":
        kinds.append("above_one")
        weights.append(12)
    p = np.array(weights, dtype=float) / sum(weights)
    kind = kinds[rng.choice(len(kinds), p=p)]
    cell = {
        "nan": lambda: float("nan"),
        "none": lambda: None,
        "inf": lambda: math.inf,
        "-inf": lambda: -math.inf,
        "zero": lambda: 0.0 if rng.random() < 0.5 else 0,
        "-zero": lambda: -0.0,
        "negative": lambda: -abs(value) if _is_number(value) and value else -1.0,
        "text": lambda: BAD_TEXT[rng.integers(len(BAD_TEXT))],
        "bool": lambda: bool(rng.random() < 0.5),
        "bigint": lambda: 10 ** int(rng.integers(309, 400)),
        "above_one": lambda: float(10 ** rng.uniform(0.001, 30)),
    }[kind]()
    return cell, kind


def _row_labels(rng: np.random.Generator, n: int) -> tuple[pd.Index, str]:
    kind = ["range", "offset", "text", "repeated"][rng.choice(4, p=[0.3, 0.2, 0.4, 0.1])]
    if kind == "range":
        return pd.RangeIndex(n), kind
    if kind == "offset":
        return pd.Index(range(1000, 1000 + 7 * n, 7)), kind
    prefix = ROW_PREFIXES[rng.integers(len(ROW_PREFIXES))]
    step = 1 if kind == "text" else 2
    return pd.Index([f"{prefix}{i // step:04d}" for i in range(n)], name="run"), kind


def make_case(rng: np.random.Generator) -> Case:
    """Generate one table with random corruptions."""
    kinds: list[str] = []
    u = rng.random()
    n = 0 if u < 0.04 else int(rng.integers(1, 5)) if u < 0.12 else int(rng.integers(5, 41))
    if n == 0:
        kinds.append("empty table")
    elif n < NUM_LAW_PARAMS:
        kinds.append("too few rows")
    response = "metric" if rng.random() < 0.25 else "loss"
    grouped = bool(rng.random() < 0.5)
    columns = [*SCALES, response, GROUP]
    data: dict[str, list[object]] = {
        "params": list(10 ** rng.uniform(5, 11, n)),
        "tokens": list(10 ** rng.uniform(7, 13, n)),
        response: list(
            rng.uniform(0.01, 0.99, n) if response == "metric" else rng.uniform(1.5, 6, n)
        ),
    }
    pool = [_label(rng) for _ in range(int(rng.integers(1, 5)))]
    data[GROUP] = [pool[i] for i in rng.integers(len(pool), size=n)]
    data = {c: [float(v) if isinstance(v, np.floating) else v for v in data[c]] for c in columns}

    # Bad cells.
    for _ in range(int(rng.choice([0, 1, 2, 3, 5], p=[0.35, 0.3, 0.15, 0.1, 0.1])) if n else 0):
        column = columns[rng.integers(len(columns))]
        row = int(rng.integers(n))
        if column == GROUP:
            data[GROUP][row] = None if rng.random() < 0.5 else float("nan")
            kinds.append("missing group label")
        else:
            data[column][row], kind = _bad_cell(rng, column, data[column][row])
            kinds.append(f"{kind} in {'scale' if column in SCALES else 'response'}")
    # Odd but valid cells: huge and tiny magnitudes, Python ints, numbers as text.
    for _ in range(int(rng.choice([0, 1, 3], p=[0.5, 0.3, 0.2])) if n else 0):
        column = columns[rng.integers(3)]
        row = int(rng.integers(n))
        value = data[column][row]
        if not (isinstance(value, float) and math.isfinite(value) and value > 0):
            continue
        kind = ["tiny", "huge", "int", "numeric text"][rng.integers(4)]
        if kind == "tiny":
            data[column][row] = float(10 ** rng.uniform(-30, -20))
        elif kind == "huge":
            data[column][row] = float(10 ** rng.uniform(20, 30))
        elif kind == "int":
            data[column][row] = max(int(value), 1) if column != "metric" else 1
        else:
            data[column][row] = repr(value)
        kinds.append(f"{kind} value")
    if n >= 3 and rng.random() < 0.01:
        column = SCALES[rng.integers(2)]
        data[column][:3] = [1e-300, 2e-300, 1e300]
        kinds.append("scales spanning 1e-300 .. 1e300")
    if n and rng.random() < 0.05:
        column = columns[rng.integers(3)]
        data[column] = [
            repr(v) if isinstance(v, float | int) and not isinstance(v, bool) else v
            for v in data[column]
        ]
        kinds.append("numeric column as text")

    index, index_kind = _row_labels(rng, n)
    if index_kind != "range":
        kinds.append(f"{index_kind} index")
    frame = pd.DataFrame(data, index=index)

    # Duplicated runs.
    if n and rng.random() < 0.10:
        rows = rng.integers(n, size=int(rng.integers(1, 4)))
        copies = frame.iloc[rows].copy()
        if rng.random() < 0.5:
            copies.index = [f"copy-{i}" for i in range(len(rows))]
        frame = pd.concat([frame, copies])
        kinds.append("duplicated runs")
    first = frame["params"].iloc[0] if n else None
    if n and rng.random() < 0.01 and isinstance(first, float) and math.isfinite(first):
        copy = frame.iloc[[0]].astype({"params": object})
        copy.index = ["copy-text"]
        copy.iloc[0, copy.columns.get_loc("params")] = repr(float(frame["params"].iloc[0]))
        frame = pd.concat([frame.astype({"params": object}), copy])
        kinds.append("duplicated run, one cell as text")

    # Column names.
    u = rng.random()
    if u < 0.08:
        column = columns[rng.integers(len(columns))]
        frame = frame.drop(columns=column)
        kinds.append(f"dropped column {column!r}")
    elif u < 0.16:
        column = columns[rng.integers(len(columns))]
        new = RENAMES[rng.integers(len(RENAMES))].format(c=column, C=column.upper())
        frame = frame.rename(columns={column: new})
        kinds.append("renamed column")
    elif u < 0.18:
        column = columns[rng.integers(len(columns))]
        frame = pd.concat([frame, frame[[column]]], axis=1)
        kinds.append("duplicated column name")
    if rng.random() < 0.05:
        junk = ["flops", "notes", "metric" if response == "loss" else "accuracy"][rng.integers(3)]
        frame[junk] = [[None, "abc", -1.0, math.inf][i] for i in rng.integers(4, size=len(frame))]
        kinds.append("junk extra column")
    if rng.random() < 0.01:
        frame = pd.DataFrame(index=frame.index)
        kinds.append("no columns")
    return Case(frame=frame, grouped=grouped, kinds=kinds or ["clean"])


def make_bad_file(rng: np.random.Generator) -> bytes:
    """Bytes of a malformed CSV file."""
    u = rng.random()
    if u < 0.5:
        return BAD_FILES[rng.integers(len(BAD_FILES))]
    if u < 0.75:
        return rng.bytes(int(rng.integers(0, 65)))
    text = make_case(rng).frame.to_csv(index=False).encode()
    return text[: int(rng.integers(0, len(text) + 1))]  # truncated


# -- the oracle ---------------------------------------------------------------------------------


def _number(column: str, cell: object) -> float | None:
    """The value of a numeric cell, or None if the validator must reject it."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, str):
        if cell in BAD_TEXT:
            return None
        cell = float(cell)
    try:
        value = float(cell)
    except OverflowError:
        return None
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


@dataclasses.dataclass
class Problem:
    """Something a rejection must point at: a column (and rows), or rows alone."""

    column: str | None
    rows: list[object]
    what: str


def problems(frame: pd.DataFrame, grouped: bool) -> list[Problem]:
    """Every reason to reject ``frame``, worked out cell by cell."""
    if len(frame) == 0:
        return [Problem(None, [], "empty")]
    response = next((c for c in ("loss", "metric") if c in frame.columns), None)
    required = [*SCALES, response or "loss"] + ([GROUP] if grouped else [])
    found = [Problem(c, [], "missing column") for c in required if c not in frame.columns]
    names = list(frame.columns)
    found += [Problem(c, [], "duplicated column") for c in required if names.count(c) > 1]
    for column in required:
        if names.count(column) != 1:
            continue
        cells = frame[column].tolist()
        if column == GROUP:
            bad = [r for r, c in zip(frame.index, cells, strict=True) if _missing_label(c)]
        else:
            bad = [r for r, c in zip(frame.index, cells, strict=True) if _number(column, c) is None]
        if bad:
            found.append(Problem(column, bad, "bad cells"))
    if len(frame) < NUM_LAW_PARAMS:  # whatever else is wrong
        found.append(Problem(None, list(frame.index), "too few runs"))
    if any(list(frame.columns).count(c) != 1 for c in required):
        return found
    # Copies of a run, compared on values (a bad cell compares as itself).
    keys = [
        tuple(_key(c, frame[c].iloc[i]) for c in required if c != GROUP)
        + ((_key(GROUP, frame[GROUP].iloc[i]),) if grouped else ())
        for i in range(len(frame))
    ]
    counts = collections.Counter(keys)
    duplicated = [r for r, k in zip(frame.index, keys, strict=True) if counts[k] > 1]
    if duplicated:
        found.append(Problem(None, duplicated, "duplicated runs"))
    return found


def _names_row(message: str, rows: list[object]) -> bool:
    return any(re.search(rf"(?<![\w.-]){re.escape(str(row))}(?!\w|\.\d)", message) for row in rows)


def points_at(message: str, problem: Problem) -> bool:
    """Whether ``message`` names the problem's column and one of its rows."""
    if problem.what == "empty":
        return "empty" in message
    if problem.column is not None and f"'{problem.column}'" not in message:
        return False
    return not problem.rows or _names_row(message, problem.rows)


def accepted_faithfully(frame: pd.DataFrame, grouped: bool, data) -> tuple[bool, bool, bool]:
    """(all rows kept, values and labels as given, every array finite and > 0)."""
    kept = data.num_runs == len(frame) and list(data.rows) == list(frame.index)
    if not kept:
        return False, False, False
    same = [data.response] == [c for c in ("loss", "metric") if c in frame.columns][:1]
    expected = {c: [_number(c, v) for v in frame[c]] for c in [*SCALES, data.response]}
    same = same and all(None not in v for v in expected.values())
    if same:
        same = all(
            np.array_equal(data.scales[c], np.array(expected[c], dtype=np.float64)) for c in SCALES
        ) and np.array_equal(data.y, np.array(expected[data.response], dtype=np.float64))
    if grouped:
        same = same and [data.labels[c] for c in data.codes] == [str(v) for v in frame[GROUP]]
    with np.errstate(all="ignore"):
        arrays = [data.y, *data.scales.values()]
        logs = list(data.log_scales().values())
    finite = all(np.all(np.isfinite(a)) and np.all(a > 0) for a in arrays) and all(
        np.all(np.isfinite(a)) for a in logs
    )
    return kept, same, finite


# -- message templates --------------------------------------------------------------------------

_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_NUMBER = re.compile(
    r"(?<![\w.-])-?(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?(?!\w|\.\d)|(?<!\w)-?(?:inf|nan)\b"
)
_BYTE = re.compile(r"\b0x[0-9a-f]{2}\b")


def template(
    message: str, rows: object = (), path: str | None = None, *, values: bool = True
) -> str:
    """Replace the path, row labels, held values, lists and numbers of a message by placeholders.

    ``rows`` are the table's row labels; ``values=False`` keeps quoted text (for exceptions).
    """
    if path:
        message = message.replace(path, "<path>")
    message = message.replace("\n", "\\n")
    labels = sorted({str(r) for r in rows}, key=len, reverse=True)  # type: ignore[attr-defined]
    if labels:
        label = "(?:" + "|".join(map(re.escape, labels)) + r")(?!\w|\.\d)"
        span = re.compile(
            rf"\brows? {label}(?:(?:, | and ){label})*(?: \(and \d+ more\))?"
            r"(?P<held> holds? .+?(?=\.(?: |$)))?"
        )
        message = span.sub(
            lambda m: "row(s) <rows>" + (" hold(s) <values>" if m.group("held") else ""), message
        )
    while True:
        shorter = re.sub(r"\[[^\[\]]*\]", "[...]", message)
        if shorter == message:
            break
        message = shorter
    if values:
        keep = {*COLUMN_NAMES, "<path>"}
        message = _QUOTED.sub(
            lambda m: m.group(0) if m.group(0)[1:-1] in keep else "'<text>'", message
        )
    message = _BYTE.sub("<byte>", message)
    message = _NUMBER.sub("<n>", message)
    return re.sub(r"<n>-\d+", "<n>-<n>", message)


# -- running ------------------------------------------------------------------------------------


@dataclasses.dataclass
class CliResult:
    """What one in-process ``bayescale fit`` run did."""

    status: int | None
    stdout: str
    stderr: str
    escaped: BaseException | None


def run_cli(path: str, out: str, grouped: bool) -> CliResult:
    """Run ``bayescale fit`` in-process on ``path``, capturing its output."""
    argv = ["fit", path, "--law", LAW, "--out", out] + (["--group", GROUP] if grouped else [])
    stdout, stderr = io.StringIO(), io.StringIO()
    status, escaped = None, None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = cli.main(argv)
        except SystemExit as err:  # argparse
            status = err.code if isinstance(err.code, int) else 1
        except Exception as err:  # a traceback for the user
            escaped = err
    return CliResult(status, stdout.getvalue(), stderr.getvalue(), escaped)


def validate_csv(path: str, grouped: bool) -> tuple[BaseException | None, pd.Index]:
    """What ``bayescale fit`` will raise before sampling (None: the CSV is a valid table), and
    the row labels of the table read back (empty if it cannot be read)."""
    index = pd.RangeIndex(0)
    try:
        frame = read_table(path)
        index = frame.index
        ScalingModel(LAW, group=GROUP if grouped else None).specify(frame)
    except Exception as err:
        return err, index
    return None, index


class Tally:
    """Counts and examples."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.messages: collections.Counter[str] = collections.Counter()
        self.cli_messages: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, str] = {}

    def example(self, key: str, text: str | Callable[[], str]) -> None:
        """Count ``key``; keep the first example (``text`` may be a function, called once)."""
        self.counts[key] += 1
        if key not in self.examples:
            self.examples[key] = text() if callable(text) else text


def _describe(case: Case) -> str:
    """The kinds of corruption, and the first rows the oracle objects to (else the first)."""
    frame = case.frame
    flagged = [r for p in problems(frame, case.grouped) for r in p.rows]
    positions = [i for i, r in enumerate(frame.index) if r in set(flagged[:3])][:6]
    positions = sorted(set(positions) | set(range(min(len(frame), 4 - len(positions)))))
    rows = frame.iloc[positions].map(lambda v: f"{str(v)[:16]}..." if len(str(v)) > 20 else v)
    with pd.option_context("display.width", 200, "display.max_columns", 12):
        shown = rows.to_string() if len(frame.columns) else repr(frame)
    return (
        f"kinds={case.kinds}, grouped={case.grouped}, {len(frame)} rows, columns "
        f"{list(frame.columns)}; rows {positions}:\n{shown}"
    )


def _with(context: Callable[[], str], message: str) -> str:
    return f"{context()}\nmessage: {message}"


def _file(content: bytes) -> str:
    return f"file {content[:80]!r}"


def check_cli(
    tally: Tally,
    tmp: str,
    frame: pd.DataFrame | None,
    content: bytes | None,
    grouped: bool,
    context: Callable[[], str],
) -> None:
    """Write the case as a CSV and run the CLI on it (never on a CSV that would be sampled)."""
    path = os.path.join(tmp, "runs.csv")
    out = os.path.join(tmp, "fit.nc")
    if frame is not None:
        frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    else:
        with open(path, "wb") as handle:
            handle.write(content)
    expected, index = validate_csv(path, grouped)
    if expected is None:
        tally.example("cli skipped: CSV is valid", context)
        return
    if frame is not None and len(index) and len(index) != len(frame):
        tally.example("csv rows changed", context)
    result = run_cli(path, out, grouped)
    tally.counts["cli runs"] += 1
    traceback = result.escaped is not None or "Traceback" in result.stderr
    if traceback:
        kind = type(result.escaped).__name__ if result.escaped else "Traceback in stderr"
        tally.example(f"cli traceback: {kind}", context)
        tally.counts["cli tracebacks"] += 1
        return
    one = (
        result.status == 2
        and result.stderr.startswith(PREFIX)
        and result.stderr.count(PREFIX) == 1
        and result.stderr.endswith("\n")
        and result.stdout == ""
    )
    if one:
        tally.counts["cli exit 2, one message"] += 1
        tally.cli_messages[template(result.stderr[len(PREFIX) : -1], index, path)] += 1
        if result.stderr != f"{PREFIX}{expected}\n":
            tally.example("cli message differs from the validator's", context)
    else:
        tally.example(f"cli other outcome: status {result.status}", context)
    if os.path.exists(out):
        tally.example("cli wrote a fit", context)
        os.remove(out)


def run(num_cases: int, num_files: int, seed: int) -> Tally:
    """Generate and check every case."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(num_cases):
            case = make_case(rng)
            frame, grouped = case.frame, case.grouped
            expected = problems(frame, grouped)
            before = frame.copy()
            context = functools.partial(_describe, case)
            tally.counts["cases"] += 1
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    spec, data = ScalingModel(LAW, group=GROUP if grouped else None).specify(frame)
                    error = None
                except (DataError, SpecError) as err:
                    error = err
                except Exception as err:
                    error = err
                    message = f"{type(err).__name__}: {err}"
                    tally.example(f"crash: {template(message, values=False)}", context)
                    tally.counts["crashed"] += 1
            if caught:
                tally.example(
                    f"warning: {caught[0].category.__name__}: {caught[0].message}", context
                )
            if not frame.equals(before):
                tally.example("caller's table modified", context)
            if error is None:
                tally.counts["accepted"] += 1
                kept, same, finite = accepted_faithfully(frame, grouped, data)
                if not kept:
                    tally.example("rows silently lost", context)
                elif not same and not expected:
                    tally.example("accepted, values or labels altered", context)
                if not finite:
                    tally.example("accepted, non-finite or non-positive arrays", context)
                if expected:
                    kinds = sorted({p.what for p in expected})
                    tally.example(f"bad input accepted: {', '.join(kinds)}", context)
                    tally.counts["bad input accepted"] += 1
                continue
            if isinstance(error, DataError | SpecError):
                message = str(error)
                tally.counts["rejected with message"] += 1
                tally.messages[template(message, frame.index)] += 1
                if not expected:
                    tally.example(
                        "valid input rejected", functools.partial(_with, context, message)
                    )
                elif not any(points_at(message, p) for p in expected):
                    tally.example(
                        "rejected, message names no offending column/row",
                        functools.partial(_with, context, message),
                    )
            check_cli(tally, tmp, frame, None, grouped, context)
        for _ in range(num_files):
            content = make_bad_file(rng)
            tally.counts["file cases"] += 1
            before_runs = tally.counts["cli runs"]
            grouped = bool(rng.random() < 0.5)
            check_cli(tally, tmp, None, content, grouped, functools.partial(_file, content))
            tally.counts["file cli runs"] += tally.counts["cli runs"] - before_runs
    return tally


MUST_BE_ZERO = (
    "crashed",
    "rows silently lost",
    "bad input accepted",
    "accepted, values or labels altered",
    "accepted, non-finite or non-positive arrays",
    "rejected, message names no offending column/row",
    "cli tracebacks",
    "cli message differs from the validator's",
    "cli wrote a fit",
    "caller's table modified",
    "csv rows changed",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def report(tally: Tally, args: argparse.Namespace, seconds: float, load: tuple) -> int:
    """Print the results; return the exit status."""
    c = tally.counts
    other_cli = sum(v for k, v in c.items() if k.startswith("cli other outcome"))
    warned = sum(v for k, v in c.items() if k.startswith("warning: "))
    rows = [
        ("cases (generated tables)", c["cases"]),
        ("accepted", c["accepted"]),
        ("rejected with message (DataError/SpecError)", c["rejected with message"]),
        ("crashed (other exception; must be 0)", c["crashed"]),
        ("rows silently lost (accepted with fewer rows; must be 0)", c["rows silently lost"]),
        ("bad input accepted (must be 0)", c["bad input accepted"]),
        ("accepted, values or labels altered (must be 0)", c["accepted, values or labels altered"]),
        (
            "accepted, non-finite or non-positive arrays incl. log scales (must be 0)",
            c["accepted, non-finite or non-positive arrays"],
        ),
        ("valid input rejected", c["valid input rejected"]),
        (
            "rejected, message names no offending column/row (must be 0)",
            c["rejected, message names no offending column/row"],
        ),
        ("cases with a warning from the validator", warned),
        ("file cases (malformed CSV files, CLI only)", c["file cases"]),
        ("CLI runs (not-accepted tables + files)", c["cli runs"]),
        ("CLI exit 2 with one message", c["cli exit 2, one message"]),
        ("CLI tracebacks (exception escaping main; must be 0)", c["cli tracebacks"]),
        ("CLI other exit status or output", other_cli),
        (
            "CLI message differs from the validator's (must be 0)",
            c["cli message differs from the validator's"],
        ),
        ("CLI not run: CSV round trip is a valid table", c["cli skipped: CSV is valid"]),
        ("CSV rows changed by write + read_table (must be 0)", c["csv rows changed"]),
    ]
    print(f"## Input fuzzing: {args.cases} tables + {args.files} files, seed {args.seed}\n")
    print(f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"- versions: python {platform.python_version()}, numpy {np.__version__}, pandas "
        f"{pd.__version__}, jax {jax.__version__}, bayescale {bayescale.__version__}"
    )
    print(f"- load average at start (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load)}")
    print(f"- wall time: {seconds:.1f} s\n")
    print("| count | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")

    problems_seen = sorted(
        (k, v)
        for k, v in c.items()
        if k.startswith(("crash: ", "cli traceback: ", "bad input accepted: ", "warning: "))
        or (k in MUST_BE_ZERO and k not in ("crashed", "bad input accepted", "cli tracebacks"))
        or k.startswith("cli other outcome")
        or k in ("valid input rejected", "cli skipped: CSV is valid")
    )
    problems_seen = [(k, v) for k, v in problems_seen if v]
    if problems_seen:
        print("\n### Failures by kind (count, then the first case)\n")
        for key, value in problems_seen:
            print(f"- **{key}**: {value}")
            print("  ```")
            for line in tally.examples.get(key, "").splitlines()[:12]:
                print(f"  {line}")
            print("  ```")

    print(f"\n### Distinct validator messages ({len(tally.messages)} templates)\n")
    print("| count | message template |\n|---:|---|")
    for message, count in tally.messages.most_common():
        print(f"| {count} | {_cell(message)} |")
    cli_only = {k: v for k, v in tally.cli_messages.items() if k not in tally.messages}
    print(f"\n### CLI messages not among the validator's ({len(cli_only)} templates)\n")
    print("| count | message template |\n|---:|---|")
    for message, count in sorted(cli_only.items(), key=lambda kv: -kv[1]):
        print(f"| {count} | {_cell(message)} |")
    bad = [k for k in MUST_BE_ZERO if c[k]]
    print(f"\nmust-be-0 counts not 0: {bad or 'none'}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="generated tables")
    parser.add_argument("--files", type=int, default=500, help="malformed files (CLI only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    jax.devices()  # start JAX once, before the CLI sets its device count
    load = os.getloadavg()
    start = time.perf_counter()
    tally = run(args.cases, args.files, args.seed)
    return report(tally, args, time.perf_counter() - start, load)


if __name__ == "__main__":
    sys.exit(main())
