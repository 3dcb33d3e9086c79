"""Validated tables of training runs: the boundary where every input check lives."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayescale.errors import DataError

RESPONSES: tuple[str, ...] = ("loss", "metric")
KNOWN_SCALES: tuple[str, ...] = ("params", "tokens", "flops", "step", "data_size")
_SHOWN = 5


def _rows(labels: Sequence[object], values: Sequence[object] | None = None) -> str:
    """Describe the first offending rows, e.g. ``rows 12 and 40 hold 0.0 and -1.3``."""
    labels = list(labels)
    shown = [str(label) for label in labels[:_SHOWN]]
    more = f" (and {len(labels) - _SHOWN} more)" if len(labels) > _SHOWN else ""
    noun = "row" if len(labels) == 1 else "rows"
    where = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    if values is None:
        return f"{noun} {where}{more}"
    held = [repr(v) if isinstance(v, str) else str(v) for v in list(values)[:_SHOWN]]
    what = held[0] if len(held) == 1 else ", ".join(held[:-1]) + " and " + held[-1]
    verb = "holds" if len(labels) == 1 else "hold"
    return f"{noun} {where}{more} {verb} {what}"


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV table of runs, turning every reader failure into a `DataError`.

    Raises
    ------
    DataError
        If the file is missing, empty, not text, or not parseable as CSV.
    """
    try:
        header = pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0].tolist()
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"no file at {str(path)!r}; check the path.") from None
    except IsADirectoryError:
        raise DataError(f"{str(path)!r} is a directory; give the path of a CSV file.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{str(path)!r} is empty; it needs a header row and runs.") from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as err:
        raise DataError(
            f"{str(path)!r} cannot be read as a CSV table ({type(err).__name__}: {err}). "
            "Save it as comma-separated UTF-8 text with one header row."
        ) from None
    repeated = sorted({str(h) for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(
            f"{str(path)!r} has more than one column named {repeated} in its header; rename "
            "or drop the copies so that each column is read once."
        )
    return _require_frame(frame, f"the table in {str(path)!r}")


def _require_frame(frame: object, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame; got {type(frame).__name__} instead.")
    if len(frame) == 0:
        raise DataError(f"{what} is empty; it needs at least one row.")
    return frame


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()] if c in columns})
    if repeated:
        raise DataError(
            f"{what} has more than one column named {repeated}; rename or drop the copies so "
            "that each column is read once."
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(
            f"{what} has no column {names}; its columns are {[str(c) for c in frame.columns]}. "
            "Rename the column, or tell the model which column to use (x=..., group=...)."
        )


def _numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return ``frame[column]`` as float64, naming rows that hold text or missing values."""
    raw = frame[column]
    if raw.dtype.kind in "iuf":
        array = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        cells = [_to_float(cell) for cell in raw.to_numpy(dtype=object)]
        not_number = np.array([cell is None for cell in cells])
        if not_number.any():
            raise DataError(
                f"column {column!r} must be numeric; "
                f"{_rows(frame.index[not_number], raw[not_number])}. Fix or remove those rows."
            )
        array = np.array(cells, dtype=np.float64)
    missing = np.isnan(array)
    if missing.any():
        raise DataError(
            f"column {column!r} has missing values (NaN) in {_rows(frame.index[missing])}. "
            "Fill them in or remove those rows; nothing is dropped for you."
        )
    infinite = np.isinf(array)
    if infinite.any():
        raise DataError(
            f"column {column!r} must be finite; {_rows(frame.index[infinite], array[infinite])}. "
            "Fix or remove those rows."
        )
    return array


def _to_float(cell: object) -> float | None:
    """Convert a cell to float: NaN when missing, inf beyond float range, None for non-numbers."""
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return np.nan
    if isinstance(cell, bool | np.bool_ | bytes | complex | np.complexfloating):
        return None
    if isinstance(cell, str):
        cell = cell.strip()
        # float() also reads "1_000" and non-ASCII digits such as "١٢٣"; a table should not.
        if "_" in cell or not cell.isascii():
            return None
    try:
        return float(cell)
    except OverflowError:
        return np.inf if cell > 0 else -np.inf
    except (TypeError, ValueError):
        return None


def scale_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return a scale column (parameters, tokens, FLOPs...) as positive float64 values.

    Raises
    ------
    DataError
        If the column holds text, NaN, inf, or values <= 0.
    """
    array = _numeric_column(frame, column)
    bad = array <= 0
    if bad.any():
        raise DataError(
            f"column {column!r} is a scale and must be > 0; "
            f"{_rows(frame.index[bad], array[bad])}. Scales are counts in natural units "
            "(parameters, tokens, FLOPs), not logs: remove those rows or undo the log."
        )
    return array


def response_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return the response (``loss`` > 0, or ``metric`` in [0, 1]) as float64 values.

    Raises
    ------
    DataError
        If the column holds text, NaN, inf, or values outside its range.
    """
    array = _numeric_column(frame, column)
    if column == "metric":
        bad = (array < 0) | (array > 1)
        if bad.any():
            raise DataError(
                f"column 'metric' must lie in [0, 1]; {_rows(frame.index[bad], array[bad])}. "
                "Give accuracies as fractions (0.42, not 42), or model 'loss' instead."
            )
    else:
        bad = array <= 0
        if bad.any():
            raise DataError(
                f"column {column!r} must be > 0; {_rows(frame.index[bad], array[bad])}. "
                "Remove them, or model 'metric' instead."
            )
    return array


def group_codes(
    frame: pd.DataFrame, column: str, labels: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Encode a group column as integer codes.

    Parameters
    ----------
    frame : DataFrame
        Table holding ``column``.
    column : str
        Group column (task, dataset, architecture...).
    labels : sequence of str, optional
        Known labels (from a fit); a label outside them is an error. Without it, the labels are
        the sorted distinct values.

    Returns
    -------
    codes : ndarray of int
        Index of each row's label.
    labels : tuple of str
        The labels, in code order.
    """
    raw = frame[column]
    missing = raw.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"group column {column!r} has missing labels in {_rows(frame.index[missing])}. "
            "Give every run a group, or remove those rows."
        )
    text = raw.astype(str).to_numpy()
    kinds: dict[str, set[str]] = {}
    for label, cell in zip(text, raw.to_numpy(dtype=object), strict=True):
        kinds.setdefault(label, set()).add(type(cell).__name__)
    mixed = sorted(label for label, types in kinds.items() if len(types) > 1)
    if mixed:
        rows = frame.index[np.isin(text, mixed)]
        raise DataError(
            f"group column {column!r} holds labels {mixed} both as text and as numbers "
            f"({_rows(rows)}), which would merge different groups. Write every label as text."
        )
    if labels is None:
        labels = tuple(sorted(set(text)))
    position = {label: i for i, label in enumerate(labels)}
    unknown = np.array([label not in position for label in text])
    if unknown.any():
        raise DataError(
            f"group column {column!r} holds labels the fit has never seen: "
            f"{_rows(frame.index[unknown], text[unknown])}. Known labels are {list(labels)}."
        )
    return np.array([position[label] for label in text], dtype=np.int32), tuple(labels)


def default_response(frame: pd.DataFrame) -> str:
    """Pick the response column: ``loss`` if present, else ``metric``."""
    for name in RESPONSES:
        if name in frame.columns:
            return name
    raise DataError(
        f"the table has neither a 'loss' nor a 'metric' column; its columns are "
        f"{[str(c) for c in frame.columns]}. Rename the measured column to 'loss' (cross-entropy "
        "> 0) or 'metric' (accuracy in [0, 1])."
    )


def default_scale(frame: pd.DataFrame) -> str:
    """Pick the only scale column of a table, for a law of a single scale."""
    present = [c for c in KNOWN_SCALES if c in frame.columns]
    if len(present) == 1:
        return present[0]
    found = present or [str(c) for c in frame.columns]
    raise DataError(
        f"cannot tell which column is the scale; candidates are {found}. Pass x='flops' "
        "(or the column you mean)."
    )


@dataclasses.dataclass(frozen=True)
class ScalingData:
    """A validated table of runs: positive scales, a response, and a group index.

    Attributes
    ----------
    scales : mapping of str to ndarray
        Scale columns in natural units, keyed by column name.
    response : str
        Name of the response column (``loss`` or ``metric``).
    y : ndarray
        The response.
    references : mapping of str to float
        Reference scale per column (the geometric mean of the fitted table): laws see
        ``log(scale / reference)``.
    response_ref : float
        Geometric mean of the response; default priors in response units are centred on it.
    group : str or None
        Group column name.
    labels : tuple of str
        Group labels, in code order (empty without a group).
    codes : ndarray of int
        Group code of each run (zeros without a group).
    rows : ndarray
        The table's index labels, so that messages and outputs can point back at rows.
    """

    scales: Mapping[str, np.ndarray]
    response: str
    y: np.ndarray
    references: Mapping[str, float]
    response_ref: float
    group: str | None
    labels: tuple[str, ...]
    codes: np.ndarray
    rows: np.ndarray

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        scales: Sequence[str],
        response: str | None = None,
        group: str | None = None,
    ) -> ScalingData:
        """Validate a long table of runs.

        Parameters
        ----------
        frame : DataFrame
            One row per run: scale columns, the response, optionally a group column.
        scales : sequence of str
            Scale columns the law reads.
        response : {"loss", "metric"}, optional
            Response column; by default ``loss`` if present, else ``metric``.
        group : str, optional
            Group column.

        Raises
        ------
        DataError
            For a missing column, text in a numeric column, NaN, inf, a scale <= 0, a loss <= 0,
            a metric outside [0, 1], a missing group label or a duplicated run. The message
            names the column, the first rows and the fix.
        TypeError
            If ``frame`` is not a DataFrame.
        """
        frame = _require_frame(frame, "the table of runs")
        response = response or default_response(frame)
        if response not in RESPONSES:
            raise DataError(f"response must be one of {RESPONSES}; got {response!r}.")
        columns = [*scales, response] + ([group] if group else [])
        _require_columns(frame, columns, "the table of runs")
        scale_values = {name: scale_column(frame, name) for name in scales}
        y = response_column(frame, response)
        if group:
            codes, labels = group_codes(frame, group)
        else:
            codes, labels = np.zeros(len(frame), dtype=np.int32), ()
        checked = pd.DataFrame({**scale_values, response: y}, index=frame.index)
        if group:
            checked[group] = np.asarray(labels)[codes]
        _reject_duplicates(checked, list(checked.columns))
        return cls(
            scales=scale_values,
            response=response,
            y=y,
            references={name: _geometric_mean(v) for name, v in scale_values.items()},
            response_ref=_geometric_mean(np.clip(y, 1e-6, None)),
            group=group,
            labels=labels,
            codes=codes,
            rows=frame.index.to_numpy(),
        )

    @property
    def num_runs(self) -> int:
        """Number of runs (rows)."""
        return int(self.y.shape[0])

    @property
    def num_groups(self) -> int:
        """Number of groups (1 without a group column)."""
        return max(len(self.labels), 1)

    def log_scales(self, frame: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
        """Return ``log(scale / reference)`` for the fitted runs, or for new rows of ``frame``."""
        if frame is None:
            values = self.scales
        else:
            frame = _require_frame(frame, "the table to forecast at ('at')")
            _require_columns(frame, list(self.references), "the table to forecast at ('at')")
            values = {name: scale_column(frame, name) for name in self.references}
        return {name: np.log(values[name]) - np.log(ref) for name, ref in self.references.items()}

    def require_positive_response(self) -> None:
        """Require a response > 0, as noise models on the log of the response need.

        Raises
        ------
        DataError
            If some responses are 0.
        """
        zero = self.y <= 0
        if zero.any():
            raise DataError(
                f"column {self.response!r} must be > 0 for a noise model on its log; "
                f"{_rows(self.rows[zero], self.y[zero])}. Remove those runs, or model the error "
                "rate 1 - metric if it is the one that stays above 0."
            )

    def check_enough_runs(self, num_params: int, independent: Sequence[str]) -> None:
        """Require at least as many runs as free parameters, overall and per group.

        Parameters
        ----------
        num_params : int
            Number of the law's parameters.
        independent : sequence of str
            Parameters estimated separately in each group; each group needs at least that many
            runs.

        Raises
        ------
        DataError
            If there are too few runs overall or in a group.
        """
        if self.num_runs < num_params:
            raise DataError(
                f"the law has {num_params} parameters but the table holds only {self.num_runs} "
                f"runs ({_rows(self.rows)}). Add runs or use a law with fewer parameters."
            )
        if not (self.group and independent):
            return
        counts = np.bincount(self.codes, minlength=len(self.labels))
        need = len(independent)
        short = [label for label, n in zip(self.labels, counts, strict=True) if n < need]
        if short:
            rows = self.rows[np.isin(self.codes, [self.labels.index(s) for s in short])]
            raise DataError(
                f"group column {self.group!r}: groups {short} have fewer runs than their "
                f"{len(independent)} independent parameters {list(independent)} ({_rows(rows)}). "
                "Pool those parameters (pooling={'name': 'partial'}) or add runs."
            )


def _geometric_mean(values: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(values))))


def _reject_duplicates(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    duplicated = frame.duplicated(subset=list(columns), keep=False).to_numpy()
    if duplicated.any():
        raise DataError(
            f"the same run appears more than once (identical {list(columns)}): "
            f"{_rows(frame.index[duplicated])}. Remove the copies; repeated seeds at one scale "
            "are fine when their measured values differ."
        )
