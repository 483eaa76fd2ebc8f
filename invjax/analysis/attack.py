r"""A gradient-based invariance attack for any differentiable classifier.

Metamers need an invertible model. For any other classifier (the plain CNN
baseline, or the fi-RevNet treated as a black box) an input in the pre-image of
a target can be searched for by optimisation (SPEC 2, invariance-based
adversarial examples): start from a source image b and solve

    min_x  || f(x) - f(a) ||_2^2    subject to  x in [lower, upper]^D,

where f is the logits or one layer's activations (`features.logits_function`,
`features.layer_function`) and a is the target. Each step is an optax update
(Adam by default) followed by the projection onto the box (clipping), so every
iterate is a valid input. The examples of a batch are independent: the batch
objective is the sum of the per-example ones and Adam's statistics are per
coordinate.

    f = features.layer_function(cnn, "Dense_0")
    result = attack.invariance_attack(f, cnn_variables, x_target=a, x_start=b, num_steps=300)
    result.images, result.distance, result.history

The result reports the match error per example: the Euclidean distance
||f(x) - f(a)||_2 of every iterate (the history; its first and last rows are
the initial and final distances) and the final largest absolute coordinate
difference max_j |f(x)_j - f(a)_j|.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from invjax.analysis.features import FeatureFunction


class AttackResult(NamedTuple):
  """The outcome of `invariance_attack` for a batch of B examples.

  Attributes:
    images: (B, ...) the final inputs x.
    history: (num_steps + 1, B) ||f(x) - f(x_target)||_2 of every iterate,
      from x_start (row 0) to the final x (row num_steps).
    max_abs_difference: (B,) max_j |f(x)_j - f(x_target)_j| of the final x.
  """

  images: jax.Array
  history: jax.Array
  max_abs_difference: jax.Array

  @property
  def initial_distance(self) -> jax.Array:
    """(B,) ||f(x_start) - f(x_target)||_2."""
    return self.history[0]

  @property
  def distance(self) -> jax.Array:
    """(B,) ||f(x) - f(x_target)||_2 of the final x."""
    return self.history[-1]


def _differences(features: FeatureFunction, variables, x: jax.Array, target_features: jax.Array) -> jax.Array:
  """f(x) - f(a), one flat row per example: (B, F)."""
  difference = features(variables, x) - target_features
  return difference.reshape(difference.shape[0], -1)


@functools.partial(jax.jit, static_argnames=("features", "num_steps", "optimizer"))
def _attack(features, variables, x_target, x_start, learning_rate, lower, upper, *, num_steps, optimizer):
  target_features = jax.lax.stop_gradient(features(variables, x_target))

  def objective(x):
    squared_distances = jnp.sum(_differences(features, variables, x, target_features) ** 2, axis=-1)
    return jnp.sum(squared_distances), squared_distances

  transformation = optimizer(learning_rate)

  def step(carry, _):
    x, state = carry
    (_, squared_distances), gradient = jax.value_and_grad(objective, has_aux=True)(x)
    updates, state = transformation.update(gradient, state, x)
    x = optax.projections.projection_box(optax.apply_updates(x, updates), lower, upper)
    return (x, state), squared_distances

  (x, _), squared_history = jax.lax.scan(step, (x_start, transformation.init(x_start)), length=num_steps)
  final_differences = _differences(features, variables, x, target_features)
  history = jnp.sqrt(jnp.concatenate([squared_history, jnp.sum(final_differences**2, axis=-1)[None]]))
  return AttackResult(x, history, jnp.max(jnp.abs(final_differences), axis=-1))


def invariance_attack(
    features: FeatureFunction,
    variables,
    x_target: jax.Array,
    x_start: jax.Array,
    *,
    num_steps: int = 500,
    learning_rate: float = 0.01,
    bounds: tuple[float, float] = (-1.0, 1.0),
    optimizer=optax.adam,
) -> AttackResult:
  """Moves x_start until f(x) matches f(x_target), inside the input box `bounds`.

  Args:
    features: pure `(variables, x) -> (B, ...)` differentiable in x; build it
      once (`features.logits_function(model)`, `features.layer_function(model,
      layer)`) so repeated attacks reuse the compiled loop.
    variables: the classifier's variables.
    x_target: (B, ...) inputs a whose features are to be matched.
    x_start: (B, ...) inputs b the search starts from; must lie in `bounds`.
    num_steps: optimisation steps.
    learning_rate: the optimizer's step size (Adam: roughly the largest change
      per pixel and step).
    bounds: (lower, upper) of every input coordinate ([-1, 1] for invjax images).
    optimizer: an optax optimizer factory `learning_rate -> GradientTransformation`.

  Returns:
    An `AttackResult`.
  """
  if x_target.shape != x_start.shape:
    raise ValueError(f"x_target and x_start pair up and need the same shape; got {x_target.shape} and {x_start.shape}.")
  lower, upper = bounds
  if not lower < upper:
    raise ValueError(f"bounds must be (lower, upper) with lower < upper; got {bounds}.")
  if jnp.any(x_start < lower) or jnp.any(x_start > upper):
    raise ValueError(f"x_start must lie inside bounds {bounds}; rescale the images (invjax images are in [-1, 1]).")
  if num_steps < 1:
    raise ValueError(f"num_steps must be positive; got {num_steps}.")
  return _attack(
      features, variables, x_target, x_start, learning_rate, lower, upper, num_steps=num_steps, optimizer=optimizer
  )
