"""docs/quickstart.py, the quick-start notebook, runs from top to bottom, so that it cannot rot."""

import pathlib
import runpy

import pytest

QUICKSTART = pathlib.Path(__file__).resolve().parents[1] / "docs" / "quickstart.py"


@pytest.mark.slow
def test_quickstart_trains_and_draws_metamers(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the notebook writes its figure to the working directory
  notebook = runpy.run_path(str(QUICKSTART), run_name="__main__")
  assert notebook["reconstruction_error"] < 1e-4
  assert notebook["test_error"] < 0.25  # trained: chance is 0.9
  assert notebook["logit_gap"] < 1e-3  # a metamer has its logit source's logits
  assert (tmp_path / "quickstart_metamers.png").stat().st_size > 10_000
