"""Validation of tables of runs: every bad input is a DataError naming the column and the rows."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import DataError, ScalingData, ScalingModel, SpecError

SCALES = ["params", "tokens"]


def _validate(frame: pd.DataFrame, **kwargs) -> ScalingData:
    return ScalingData.from_frame(frame, scales=kwargs.pop("scales", SCALES), **kwargs)


def _raises_naming(frame: pd.DataFrame, column: str, rows: list[str], **kwargs) -> str:
    with pytest.raises(DataError) as info:
        _validate(frame, **kwargs)
    message = str(info.value)
    assert f"'{column}'" in message
    for row in rows:
        assert re.search(rf"\b{re.escape(row)}\b", message), (row, message)
    return message


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
    assert issubclass(SpecError, ValueError)


# -- a valid table ------------------------------------------------------------------------------


def test_valid_table_passes_and_keeps_every_row(runs):
    data = _validate(runs, group="task")
    assert data.num_runs == len(runs)
    assert data.response == "loss"
    np.testing.assert_array_equal(data.y, runs["loss"].to_numpy())
    np.testing.assert_array_equal(data.scales["params"], runs["params"].to_numpy())
    assert list(data.rows) == list(runs.index)
    assert data.labels == ("arc", "hellaswag")
    np.testing.assert_array_equal(data.codes, [0] * 6 + [1] * 6)
    assert data.num_groups == 2


def test_references_are_geometric_means(runs):
    data = _validate(runs)
    for column in SCALES:
        expected = np.exp(np.mean(np.log(runs[column].to_numpy())))
        assert data.references[column] == pytest.approx(expected, rel=1e-12)
    assert data.response_ref == pytest.approx(np.exp(np.mean(np.log(runs["loss"]))), rel=1e-12)
    logs = data.log_scales()
    np.testing.assert_allclose(
        logs["params"], np.log(runs["params"] / data.references["params"]), rtol=1e-12
    )


def test_real_chinchilla_table_passes_whole(chinchilla_runs):
    data = _validate(chinchilla_runs)
    assert data.num_runs == len(chinchilla_runs) == 240


def test_metric_response_at_the_bounds_is_valid(runs):
    frame = runs.drop(columns="loss").assign(metric=np.linspace(0.0, 1.0, len(runs)))
    data = _validate(frame)
    assert data.response == "metric"
    assert data.num_runs == len(runs)


# -- every validation error ---------------------------------------------------------------------


def test_missing_column(runs):
    with pytest.raises(DataError, match="'tokens'") as info:
        _validate(runs.drop(columns="tokens"))
    assert "params" in str(info.value)  # lists the columns that are there


def test_missing_group_column_named(runs):
    with pytest.raises(DataError, match="'architecture'"):
        _validate(runs, group="architecture")


def test_no_response_column(runs):
    with pytest.raises(DataError, match="'loss'.*'metric'"):
        _validate(runs.drop(columns="loss"))


def test_unknown_response(runs):
    with pytest.raises(DataError, match="'accuracy'"):
        _validate(runs, response="accuracy")


def test_text_in_numeric_column(runs):
    frame = runs.astype({"params": object})
    frame.loc["run-02", "params"] = "7B"
    frame.loc["run-09", "params"] = "n/a"
    message = _raises_naming(frame, "params", ["run-02", "run-09"])
    assert "'7B'" in message and "'n/a'" in message


def test_boolean_column_is_not_numeric(runs):
    frame = runs.assign(tokens=True)
    with pytest.raises(DataError, match="'tokens' must be numeric; rows run-00.*hold True"):
        _validate(frame)


def test_nan(runs):
    frame = runs.copy()
    frame.loc["run-03", "tokens"] = np.nan
    message = _raises_naming(frame, "tokens", ["run-03"])
    assert "NaN" in message
    assert "run-02" not in message and "run-04" not in message


def test_none_in_response(runs):
    frame = runs.astype({"loss": object})
    frame.loc["run-11", "loss"] = None
    _raises_naming(frame, "loss", ["run-11"])


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf(runs, value):
    frame = runs.copy()
    frame.loc["run-04", "params"] = value
    message = _raises_naming(frame, "params", ["run-04"])
    assert "finite" in message


def test_non_positive_scale(runs):
    frame = runs.copy()
    frame.loc["run-01", "params"] = 0.0
    frame.loc["run-05", "params"] = -3.0
    message = _raises_naming(frame, "params", ["run-01", "run-05"])
    assert "-3.0" in message


def test_non_positive_scale_in_any_scale_column(runs):
    frame = runs.copy()
    frame.loc["run-07", "tokens"] = -1.0
    _raises_naming(frame, "tokens", ["run-07"])


@pytest.mark.parametrize("value", [0.0, -0.5])
def test_loss_not_positive(runs, value):
    frame = runs.copy()
    frame.loc["run-08", "loss"] = value
    _raises_naming(frame, "loss", ["run-08"])


@pytest.mark.parametrize("value", [1.5, -0.01, 42.0])
def test_metric_outside_unit_interval(runs, value):
    frame = runs.drop(columns="loss").assign(metric=0.5 + 0.01 * np.arange(len(runs)))
    frame.loc["run-06", "metric"] = value
    message = _raises_naming(frame, "metric", ["run-06"])
    assert "run-05" not in message


def test_missing_group_label(runs):
    frame = runs.copy()
    frame.loc["run-10", "task"] = None
    _raises_naming(frame, "task", ["run-10"], group="task")


def test_duplicated_run(runs):
    frame = pd.concat([runs, runs.loc[["run-04"]].rename(index={"run-04": "run-04-copy"})])
    message = _raises_naming(frame, "params", ["run-04", "run-04-copy"])
    assert "more than once" in message


def test_repeated_seed_with_different_loss_is_not_a_duplicate(runs):
    copy = runs.loc[["run-04"]].rename(index={"run-04": "run-04-seed2"})
    copy["loss"] += 0.01
    assert _validate(pd.concat([runs, copy])).num_runs == len(runs) + 1


def test_same_scales_in_different_groups_are_not_duplicates(runs):
    frame = runs.copy()
    frame["loss"] = np.tile(frame["loss"].to_numpy()[:6], 2)  # identical runs, two tasks
    assert _validate(frame, group="task").num_runs == len(runs)
    with pytest.raises(DataError, match="more than once"):
        _validate(frame)


def test_many_bad_rows_are_shortened(runs):
    frame = runs.copy()
    frame["params"] = -1.0
    message = _raises_naming(frame, "params", ["run-00", "run-04"])
    assert "run-05" not in message
    assert "and 7 more" in message


def test_not_a_dataframe(runs):
    with pytest.raises(TypeError, match="DataFrame"):
        _validate(runs.to_dict())


def test_empty_table(runs):
    with pytest.raises(DataError, match="empty"):
        _validate(runs.iloc[:0])


def test_read_table_errors(tmp_path):
    from bayescale.data import read_table

    with pytest.raises(DataError, match="no file"):
        read_table(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table(empty)


# -- through ScalingModel.specify: run counts and options ---------------------------------------


def test_too_few_runs_overall(runs):
    few = runs.iloc[:4]  # chinchilla has 5 parameters
    with pytest.raises(DataError) as info:
        ScalingModel("chinchilla").specify(few)
    message = str(info.value)
    assert "5 parameters" in message and "4 runs" in message
    for row in few.index:
        assert row in message


def test_too_few_runs_per_group_with_independent_pooling(runs):
    frame = pd.concat([runs.iloc[:6], runs.iloc[6:8]])  # hellaswag keeps two runs
    independent = {"E": "independent", "A": "independent", "alpha": "independent"}
    model = ScalingModel("power", x="flops", group="task", pooling=independent)
    with pytest.raises(DataError) as info:
        model.specify(frame)
    message = str(info.value)
    assert "'task'" in message and "hellaswag" in message
    assert "run-06" in message and "run-07" in message
    assert "'arc'" not in message and "run-00" not in message
    # The same table is fine when the parameters are pooled.
    spec, data = ScalingModel("power", x="flops", group="task").specify(frame)
    assert data.num_runs == len(frame)


def test_specify_keeps_every_row(runs):
    spec, data = ScalingModel("chinchilla", group="task").specify(runs)
    assert data.num_runs == len(runs)
    assert spec.labels == ("arc", "hellaswag")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"group": "task", "pooling": {"gamma": "shared"}}, "gamma"),
        ({"group": "task", "pooling": {"E": "full"}}, "full"),
        ({"pooling": {"E": "partial"}}, "group column"),
        ({"noise": "gaussian"}, "gaussian"),
        ({"priors": {"E": "wide"}}, "'E'"),
        ({"priors": {"E": {"loc": 0.0}}}, "'E'"),
        ({"priors": {"E": (0.0, -1.0)}}, "scale"),
        ({"priors": {"E": (0.0, float("nan"))}}, "scale"),
        ({"priors": {"E": (float("inf"), 1.0)}}, "loc"),
        ({"priors": {"gamma": (0.0, 1.0)}}, "gamma"),
        ({"x": "params"}, "dict"),
        ({"x": {"width": "params"}}, "width"),
    ],
)
def test_bad_model_options_are_spec_errors(runs, kwargs, match):
    with pytest.raises(SpecError, match=match):
        ScalingModel("chinchilla", **kwargs).specify(runs)


def test_unknown_law(runs):
    with pytest.raises(SpecError, match="'kaplan2'"):
        ScalingModel("kaplan2").specify(runs)


@pytest.mark.parametrize("prior", [("wide", 1.0), (None, 1.0), {"loc": "a", "scale": 1.0}])
def test_non_numeric_prior_is_spec_error(runs, prior):
    with pytest.raises(SpecError, match="'E'"):
        ScalingModel("chinchilla", priors={"E": prior}).specify(runs)


def test_single_scale_law_needs_a_scale_column_choice(runs):
    with pytest.raises(DataError, match="x='flops'"):
        ScalingModel("power").specify(runs)


def test_metric_of_zero_is_rejected_before_sampling(runs):
    frame = runs.drop(columns="loss").assign(metric=np.linspace(0.0, 0.6, len(runs)))
    with pytest.raises(DataError, match="metric"):
        bs.fit(ScalingModel("power", x="flops"), frame, num_warmup=10, num_samples=10)
