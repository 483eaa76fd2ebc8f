"""Planes through input space and classifier decisions on them."""

import jax.numpy as jnp
import numpy as np
import pytest

from invjax.analysis import planes


def test_plane_through_two_points_contains_them_with_an_orthonormal_basis():
  p, q = jnp.array([3.0, 0.0, 4.0, 0.0]), jnp.array([1.0, 2.0, 0.0, -1.0])
  plane = planes.plane_through(p, q)
  np.testing.assert_allclose(plane.basis @ plane.basis.T, np.eye(2), atol=1e-6)
  np.testing.assert_allclose(plane.coordinates(p), [5.0, 0.0], atol=1e-6)
  for point in (p, q):
    np.testing.assert_allclose(plane.points(plane.coordinates(point)), point, atol=1e-5)


def test_collinear_points_span_no_plane():
  with pytest.raises(ValueError, match="collinear"):
    planes.plane_through(jnp.array([1.0, 2.0]), jnp.array([-2.0, -4.0]))


def test_decision_grid_of_a_linear_classifier():
  plane = planes.plane_through(jnp.array([2.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0]))
  # Class 1 where the first plane coordinate s is positive.
  sign_of_first_coordinate = lambda points: jnp.stack([-points[:, 0], points[:, 0]], axis=-1)
  decisions, axis = planes.decision_grid(sign_of_first_coordinate, plane, extent=1.0, resolution=4)
  assert decisions.shape == (4, 4)
  np.testing.assert_allclose(axis, [-1.0, -1 / 3, 1 / 3, 1.0], atol=1e-6)
  np.testing.assert_array_equal(decisions, np.tile([0, 0, 1, 1], (4, 1)))
