import dataclasses
import shutil
import subprocess

import pytest

import bayescale as bs
from bayescale.posterior import Posterior

HOSTILE = (
    '<script>document.title="pwned"</script>',
    "<img src=x onerror=\"document.body.setAttribute('data-pwned', 1)\">",
    'naïve | ünïcode & "quotes"',
)


@pytest.fixture(scope="module")
def hostile_post(grouped_post):
    """The grouped fit with its three group labels replaced by hostile strings."""
    spec = dataclasses.replace(grouped_post.spec, labels=HOSTILE)
    idata = grouped_post.idata.copy()
    idata.posterior = idata.posterior.assign_coords(dataset=list(HOSTILE))
    return Posterior(idata, spec, grouped_post.meta)


def test_html_report_escapes_every_user_string(hostile_post, tmp_path):
    path = bs.write_report(hostile_post, tmp_path / "r.html", title="<b>title</b>")
    text = path.read_text()
    for label in HOSTILE[:2]:
        assert label not in text
    assert "&lt;script&gt;" in text and "&lt;b&gt;title&lt;/b&gt;" in text
    assert "<b>title</b>" not in text
    assert text.count("<img ") == 2  # the two embedded figures, nothing else
    assert "data:image/png;base64," in text
    assert "Sampling diagnostics" in text and "max R-hat" in text


def test_markdown_report_escapes_and_writes_figures(hostile_post, tmp_path):
    path = bs.write_report(hostile_post, tmp_path / "r.md")
    text = path.read_text()
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;" in text
    assert "naïve \\| ünïcode" in text  # a pipe in a label cannot break the table
    figures = sorted(p.name for p in tmp_path.glob("r_figure*.png"))
    assert figures == ["r_figure1.png", "r_figure2.png"]
    for name in figures:
        assert f"]({name})" in text


def test_report_carries_sampling_warnings(grouped_post, tmp_path):
    meta = grouped_post.meta
    idata = grouped_post.idata.copy()
    idata.sample_stats["diverging"][0, :3] = True  # three divergences, as a bad fit would have
    bad = Posterior(idata, grouped_post.spec, meta)
    assert bad.diagnostics.num_divergent == 3
    with pytest.warns(bs.SamplingWarning, match="3 divergent transitions"):
        text = bs.write_report(bad, tmp_path / "bad.html").read_text()
    assert 'class="warn"' in text and "3 divergent transitions" in text
    with pytest.warns(bs.SamplingWarning):
        md = bs.write_report(bad, tmp_path / "bad.md").read_text()
    assert "**WARNING:**" in md and "3 divergent transitions" in md


def test_report_rejects_unknown_format(grouped_post, tmp_path):
    with pytest.raises(bs.SpecError, match=".pdf"):
        bs.write_report(grouped_post, tmp_path / "r.pdf")


def test_two_scale_law_report_has_predicted_vs_observed_only(chinchilla_post, tmp_path):
    text = bs.write_report(chinchilla_post, tmp_path / "c.html").read_text()
    assert text.count("<img ") == 1
    assert "Observed against posterior predictive" in text
    # Priors as the model defines them, a bounded one with its bound.
    assert "1 + LogNormal: median 10, sd of log(value - 1) 1" in text
    assert "LogNormal: median 0.3, sd of log 1" in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_no_script_runs_in_a_browser(hostile_post, tmp_path):
    # Control: the same payload, unescaped, does run in this browser, so the check can fail.
    control = tmp_path / "control.html"
    control.write_text(f"<html><head><title>x</title></head><body>{HOSTILE[0]}</body></html>")
    assert "<title>pwned</title>" in _dump_dom(control, tmp_path)

    path = bs.write_report(hostile_post, tmp_path / "r.html", title=HOSTILE[0])
    dom = _dump_dom(path, tmp_path)
    assert "<h1>" in dom  # the page rendered, with the hostile title shown as text
    assert '<title>&lt;script&gt;document.title="pwned"&lt;/script&gt;</title>' in dom
    assert "<title>pwned</title>" not in dom  # the title script did not run
    assert "<body>" in dom and 'data-pwned="1"' not in dom  # nor did the onerror handler


def _dump_dom(path, tmp_path):
    """The DOM of ``path`` after headless Chromium ran its scripts."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout
