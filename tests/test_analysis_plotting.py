"""The figures render to PNG files and refuse mismatched inputs."""

import numpy as np
import pytest

from invjax import plotting

PNG_SIGNATURE = b"\x89PNG"


def _images(count, channels=3):
  return np.random.default_rng(count).uniform(-1, 1, (count, 8, 8, channels)).astype(np.float32)


def _assert_png(figure, path):
  figure.savefig(path)
  assert path.read_bytes()[:4] == PNG_SIGNATURE


def test_metamer_figure(tmp_path):
  figure = plotting.metamer_figure(
      _images(5), _images(5), _images(5), captions=[("a", "b", "c")] * 5, triplets_per_row=2, title="metamers"
  )
  _assert_png(figure, tmp_path / "metamers.png")
  with pytest.raises(ValueError, match="as many"):
    plotting.metamer_figure(_images(2), _images(3), _images(3))


def test_interpolation_figure(tmp_path):
  paths = np.stack([_images(4), _images(4)])
  _assert_png(plotting.interpolation_figure(paths, nuisance_sources=_images(2)), tmp_path / "paths.png")


def test_decision_plane_figure(tmp_path):
  axis = np.linspace(-2.0, 2.0, 5)
  panel = plotting.PlanePanel("plane", np.eye(5, dtype=int), axis, {"x": np.array([1.0, 0.0])})
  figure = plotting.decision_plane_figure([panel] * 3, circle_radii=(1.0,), title="planes")
  _assert_png(figure, tmp_path / "planes.png")
