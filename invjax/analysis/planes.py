r"""Decision regions of classifiers on 2D planes through input space (SPEC 4).

A plane through the origin and two points p, q of R^d is spanned by the
orthonormal basis (Gram-Schmidt)

    u = p / ||p||,    v = (q - <q, u> u) / ||q - <q, u> u||,

and the point with plane coordinates (s, t) is s u + t v. For the concentric
spheres (centred at the origin) such a plane cuts each sphere in a circle of
the sphere's own radius, so the true classes are the rings r < (r_1 + r_2) / 2
and beyond. The two planes of the paper's spheres figure are:

* the plane through two data points (x, x'), and
* the plane through a point x and a metamer of x, F^{-1}(z_s(x), z_n(x')),
  which has x's logits but lies wherever x' sends it.

`decision_grid` classifies a resolution x resolution grid of points
s, t in [-extent, extent] with any classifier given as a logits function,
e.g. the model's logit classifier argmax z_s(x) or a nuisance classifier
argmax D(z_n(x)).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Plane(NamedTuple):
  """The plane {s u + t v} through the origin; `basis` is (2, d) with rows u, v orthonormal."""

  basis: jax.Array

  def points(self, coordinates: jax.Array) -> jax.Array:
    """Plane coordinates (..., 2) -> points (..., d)."""
    return coordinates @ self.basis

  def coordinates(self, points: jax.Array) -> jax.Array:
    """Points (..., d) -> coordinates (..., 2) of their orthogonal projections onto the plane."""
    return points @ self.basis.T


def plane_through(p: jax.Array, q: jax.Array) -> Plane:
  """The plane through the origin, p (d,) and q (d,), with p on the first axis."""
  if p.ndim != 1 or p.shape != q.shape:
    raise ValueError(f"p and q must be vectors of the same length; got shapes {p.shape} and {q.shape}.")
  u = p / jnp.linalg.norm(p)
  orthogonal = q - jnp.dot(q, u) * u
  norm = jnp.linalg.norm(orthogonal)
  if norm <= 1e-6 * jnp.linalg.norm(q):
    raise ValueError("p and q are (nearly) collinear with the origin and span no plane; choose other points.")
  return Plane(jnp.stack([u, orthogonal / norm]))


def decision_grid(
    logits: Callable[[jax.Array], jax.Array], plane: Plane, *, extent: float, resolution: int
) -> tuple[jax.Array, jax.Array]:
  """Classes argmax logits(points) on a grid of the plane.

  Args:
    logits: `points (N, d) -> logits (N, C)` of a classifier.
    plane: the plane.
    extent: the grid covers plane coordinates s, t in [-extent, extent].
    resolution: grid points per axis.

  Returns:
    (decisions, axis): decisions (resolution, resolution) int, row i at
    t = axis[i] and column j at s = axis[j] (image layout with the origin
    at the lower left for `imshow(origin="lower")`), and the axis (resolution,).
  """
  axis = jnp.linspace(-extent, extent, resolution)
  s, t = jnp.meshgrid(axis, axis)
  coordinates = jnp.stack([s.ravel(), t.ravel()], axis=-1)
  decisions = jnp.argmax(logits(plane.points(coordinates)), axis=-1)
  return decisions.reshape(resolution, resolution), axis
