import json

import numpy as np
import pytest

import bayescale as bs
from bayescale.cli import main

SMALL = ["--num-warmup", "500", "--num-samples", "1000", "--num-chains", "2", "--seed", "1"]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bayescale {bs.__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory, chinchilla_runs):
    """A chinchilla fit made through ``bayescale fit`` on a CSV."""
    folder = tmp_path_factory.mktemp("cli")
    chinchilla_runs.to_csv(folder / "runs.csv", index=False)
    out = folder / "fit.nc"
    status = main(
        ["fit", str(folder / "runs.csv"), "--law", "chinchilla", "--noise", "lognormal"]
        + SMALL
        + ["--out", str(out)]
    )
    assert status == 0
    return out


def test_fit_summary_forecast_round_trip(saved_fit, capsys):
    capsys.readouterr()
    assert main(["summary", str(saved_fit)]) == 0
    out = capsys.readouterr().out
    for name in ("alpha", "beta", "r_hat", "ess_bulk", "Diagnostics"):
        assert name in out
    status = main(
        ["forecast", str(saved_fit), "--at", "params=7e10,tokens=1.4e12", "--target", "1.95"]
        + ["--json"]
    )
    assert status == 0
    answer = json.loads(capsys.readouterr().out)
    post = bs.load(saved_fit)
    assert post.meta["sampler"]["warmup"] == "laplace"
    import pandas as pd

    at = pd.DataFrame({"params": [7e10], "tokens": [1.4e12]})
    row = answer["rows"][0]
    expected = bs.forecast(post, at).iloc[0]
    assert row["median"] == pytest.approx(expected["median"])
    assert row["prob_reached"] == pytest.approx(bs.prob_reached(post, 1.95, at)[0])
    assert answer["diagnostics_ok"] is True and answer["warnings"] == []


@pytest.mark.filterwarnings("ignore::bayescale.SamplingWarning")  # runs too short to mix
def test_fit_takes_the_warmup_scheme(chinchilla_runs, tmp_path):
    chinchilla_runs.to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "fit.nc"
    short = ["--num-warmup", "100", "--num-samples", "100", "--num-chains", "2"]
    args = ["fit", str(tmp_path / "runs.csv"), "--law", "chinchilla", "--noise", "lognormal"]
    assert main(args + short + ["--warmup", "standard", "--out", str(out)]) == 0
    assert bs.load(out).meta["sampler"]["warmup"] == "standard"


def test_report_command_writes_html(saved_fit, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(saved_fit), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("params,tokens,loss\n1e9,2e10,2.5\n-1e9,2e10,2.4\n", "column 'params'"),
        ("params,tokens,loss\n1e9,2e10,nan\n2e9,2e10,2.4\n", "column 'loss'"),
        ("params,tokens\n1e9,2e10\n", "'loss' nor a 'metric'"),
        ("", "is empty"),
        ("\x00\x01\xff\xfe", "cannot be read"),
    ],
)
def test_bad_csv_exits_2_with_one_message(tmp_path, capsys, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_bytes(content.encode("latin-1"))
    status = main(["fit", str(path), "--law", "chinchilla", "--out", str(tmp_path / "x.nc")])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("bayescale fit: error: ")
    assert fragment in captured.err
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert not (tmp_path / "x.nc").exists()


def test_missing_file_and_bad_options_exit_2(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "nope.nc")]) == 2
    assert "does not exist" in capsys.readouterr().err
    csv = tmp_path / "runs.csv"
    csv.write_text("flops,loss\n1e18,3.0\n1e19,2.8\n1e20,2.6\n1e21,2.5\n")
    status = main(["fit", str(csv), "--law", "power", "--pooling", "alpha", "--out", "x.nc"])
    assert status == 2
    assert "name=value" in capsys.readouterr().err
    status = main(["fit", str(csv), "--law", "nope", "--out", "x.nc"])
    assert status == 2
    assert "unknown law 'nope'" in capsys.readouterr().err


def test_forecast_unknown_group_exits_2(tmp_path, capsys, grouped_post):
    path = grouped_post.save(tmp_path / "g.nc")
    status = main(["forecast", str(path), "--at", "flops=1e22,dataset=wikipedia"])
    err = capsys.readouterr().err
    assert status == 2
    assert "'wikipedia'" in err and "Known labels" in err


def test_demo_fits_chinchilla_and_answers(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "240 Chinchilla runs" in out
    assert "All sampling checks pass." in out
    assert "P(loss <= 1.95)" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert 0.3 < float(lines["alpha"][3]) < 0.4  # median column, papers' convention
    assert np.isfinite(float(lines["E"][3]))
