r"""Metameric sampling with a fully invertible classifier (SPEC 4).

A fi-RevNet F maps an input x to z = F(x) = (z_s, z_n): the logits z_s (the
first C entries) and the nuisance variables z_n (the other d - C). Because F is
a bijection, any pair of latents can be inverted. The *metamer* of a logit
source a and a nuisance source b is

    x_met(a, b) = F^{-1}(z_s(a), z_n(b)),

an input whose logits equal those of a (up to float rounding; no optimisation
is involved) and which, for a model with excessive invariance, looks like b.
The *nuisance interpolation* from a to b in n steps keeps z_s(a) and moves z_n
on a straight line:

    x_k = F^{-1}(z_s(a), (1 - t_k) z_n(a) + t_k z_n(b)),   t_k = k / (n - 1),

so x_0 reconstructs a and x_{n-1} is the metamer x_met(a, b).

Every function here is a function of the model's variables and its inputs.
Each is written for one example (or one pair), vmapped over the batch and
jit-compiled once per model (the model is a static argument: modules with equal
fields share the compiled code). Given `mesh=`, the batch is padded to a multiple
of the mesh size, split over the mesh's data axis and the result unpadded, so
any batch size works.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from invjax import models, parallel

# --- one example -------------------------------------------------------------


def _encode_one(model: models.FiRevNet, variables, x: jax.Array) -> jax.Array:
  """z = F(x) of one input `x` (image_shape) as a flat vector (d,)."""
  z, _ = model.apply(variables, x[None])
  return z[0]


def _decode_one(model: models.FiRevNet, variables, z_s: jax.Array, z_n: jax.Array) -> jax.Array:
  """F^{-1}(z_s, z_n) of one latent, an input of `model.image_shape`."""
  x, _ = model.apply(variables, models.merge_latent(z_s, z_n)[None], method=model.inverse)
  return x[0]


def _metamer_one(model: models.FiRevNet, variables, x_logit_src: jax.Array, x_nuisance_src: jax.Array) -> jax.Array:
  z_s, _ = models.split_latent(_encode_one(model, variables, x_logit_src), model.num_classes)
  _, z_n = models.split_latent(_encode_one(model, variables, x_nuisance_src), model.num_classes)
  return _decode_one(model, variables, z_s, z_n)


def _interpolation_one(
    model: models.FiRevNet, variables, x_a: jax.Array, x_b: jax.Array, weights: jax.Array
) -> jax.Array:
  z_s, z_n_a = models.split_latent(_encode_one(model, variables, x_a), model.num_classes)
  _, z_n_b = models.split_latent(_encode_one(model, variables, x_b), model.num_classes)
  decode_at = lambda t: _decode_one(model, variables, z_s, (1.0 - t) * z_n_a + t * z_n_b)
  return jax.vmap(decode_at)(weights)


# --- batched and compiled (the model is static) ------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _encode_batch(model, variables, x):
  return jax.vmap(functools.partial(_encode_one, model), in_axes=(None, 0))(variables, x)


@functools.partial(jax.jit, static_argnums=0)
def _metamer_batch(model, variables, x_logit_src, x_nuisance_src):
  return jax.vmap(functools.partial(_metamer_one, model), in_axes=(None, 0, 0))(variables, x_logit_src, x_nuisance_src)


@functools.partial(jax.jit, static_argnums=0)
def _metamer_grid(model, variables, x_logit_srcs, x_nuisance_srcs):
  # Under vmap, F(x_logit_src) does not depend on the inner (nuisance) axis, so
  # each source is encoded once, not once per pair.
  over_nuisance = jax.vmap(functools.partial(_metamer_one, model), in_axes=(None, None, 0))
  return jax.vmap(over_nuisance, in_axes=(None, 0, None))(variables, x_logit_srcs, x_nuisance_srcs)


@functools.partial(jax.jit, static_argnums=0)
def _interpolation_batch(model, variables, x_a, x_b, weights):
  over_pairs = jax.vmap(functools.partial(_interpolation_one, model), in_axes=(None, 0, 0, None))
  return over_pairs(variables, x_a, x_b, weights)


def _call_on_mesh(
    function: Callable, model, variables, batched: tuple, broadcast: tuple = (), mesh: Mesh | None = None
):
  """`function(model, variables, *batched, *broadcast)`, optionally spread over `mesh`.

  With a mesh, the arrays in `batched` (same leading size n) are padded to a
  multiple of the mesh size by repeating their last example, split along the
  mesh's data axis, and the result's padding is cut off again; `variables` and
  `broadcast` are replicated.
  """
  if mesh is None:
    return function(model, variables, *batched, *broadcast)
  size = batched[0].shape[0]
  padding = -size % mesh.size
  pad = lambda x: jnp.pad(x, [(0, padding)] + [(0, 0)] * (x.ndim - 1), mode="edge")
  batched = jax.device_put([pad(jnp.asarray(x)) for x in batched], parallel.batch_sharding(mesh))
  variables, broadcast = jax.device_put((variables, broadcast), parallel.replicated(mesh))
  return function(model, variables, *batched, *broadcast)[:size]


def _check_inputs(model, name: str, x: jax.Array) -> None:
  if not isinstance(model, models.FiRevNet):
    raise TypeError(
        f"Metamers need an invertible model (models.FiRevNet); got {type(model).__name__}. "
        "For a non-invertible classifier use invjax.analysis.attack.invariance_attack."
    )
  if x.ndim != len(model.image_shape) + 1 or tuple(x.shape[1:]) != tuple(model.image_shape):
    raise ValueError(
        f"{name} must have shape (batch, {', '.join(map(str, model.image_shape))}), the model's "
        f"image_shape with a leading batch axis; got {x.shape}."
    )


# --- public API --------------------------------------------------------------


def encode(model: models.FiRevNet, variables, x: jax.Array, *, mesh: Mesh | None = None) -> tuple[jax.Array, jax.Array]:
  """`(z_s, z_n)` of a batch x (B, *image_shape): logits (B, C) and nuisances (B, d - C)."""
  _check_inputs(model, "x", x)
  z = _call_on_mesh(_encode_batch, model, variables, (x,), mesh=mesh)
  return models.split_latent(z, model.num_classes)


def metameric_sample(
    model: models.FiRevNet, variables, x_logit_src: jax.Array, x_nuisance_src: jax.Array, *, mesh: Mesh | None = None
) -> jax.Array:
  """Metamers x_met[i] = F^{-1}(z_s(x_logit_src[i]), z_n(x_nuisance_src[i])).

  Args:
    model: the fi-RevNet F.
    variables: its variables ({"params": ...}).
    x_logit_src: (B, *model.image_shape) inputs whose logits the metamers get.
    x_nuisance_src: (B, *model.image_shape) inputs whose nuisances they get.
    mesh: optional data mesh (`parallel.make_data_mesh()`) to split the batch over.

  Returns:
    (B, *model.image_shape) metamers, e.g. (B, 32, 32, 3) for MNIST.
  """
  _check_inputs(model, "x_logit_src", x_logit_src)
  _check_inputs(model, "x_nuisance_src", x_nuisance_src)
  if x_logit_src.shape[0] != x_nuisance_src.shape[0]:
    raise ValueError(
        f"x_logit_src and x_nuisance_src pair up example by example and need the same batch size; "
        f"got {x_logit_src.shape[0]} and {x_nuisance_src.shape[0]}. For all pairs use metamer_grid."
    )
  return _call_on_mesh(_metamer_batch, model, variables, (x_logit_src, x_nuisance_src), mesh=mesh)


def metamer_grid(
    model: models.FiRevNet, variables, x_logit_srcs: jax.Array, x_nuisance_srcs: jax.Array, *, mesh: Mesh | None = None
) -> jax.Array:
  """All pairs: grid[i, j] = F^{-1}(z_s(x_logit_srcs[i]), z_n(x_nuisance_srcs[j])).

  x_logit_srcs (N, *image_shape), x_nuisance_srcs (M, *image_shape) -> (N, M, *image_shape).
  With a mesh, the N logit sources are split over it.
  """
  _check_inputs(model, "x_logit_srcs", x_logit_srcs)
  _check_inputs(model, "x_nuisance_srcs", x_nuisance_srcs)
  return _call_on_mesh(_metamer_grid, model, variables, (x_logit_srcs,), (x_nuisance_srcs,), mesh=mesh)


def nuisance_interpolation(
    model: models.FiRevNet, variables, x_a: jax.Array, x_b: jax.Array, num_steps: int, *, mesh: Mesh | None = None
) -> jax.Array:
  """Paths x_k = F^{-1}(z_s(a), (1 - t_k) z_n(a) + t_k z_n(b)), t_k = k / (num_steps - 1).

  x_a, x_b (B, *image_shape) -> (B, num_steps, *image_shape). Step 0
  reconstructs a; the last step is metameric_sample(a, b).
  """
  _check_inputs(model, "x_a", x_a)
  _check_inputs(model, "x_b", x_b)
  if x_a.shape[0] != x_b.shape[0]:
    raise ValueError(f"x_a and x_b need the same batch size; got {x_a.shape[0]} and {x_b.shape[0]}.")
  if num_steps < 2:
    raise ValueError(f"num_steps must be at least 2 (the two endpoints); got {num_steps}.")
  weights = jnp.linspace(0.0, 1.0, num_steps, dtype=x_a.dtype)
  return _call_on_mesh(_interpolation_batch, model, variables, (x_a, x_b), (weights,), mesh=mesh)
