"""A model's forward and inverse as `jax.export` artefacts, with a symbolic batch size.

    forward, inverse = export.export_forward_inverse(model, variables, x[:1])
    blob = forward.serialize()                         # bytes: store them anywhere
    z, logdet = jax.export.deserialize(blob).call(x)   # any batch size, no invjax needed

Each artefact is StableHLO with the variables inside: it runs from its bytes
alone, in any JAX program (or any runtime that reads StableHLO), without the
model's Python code. `jax.export` keeps that serialised form readable by JAX
releases for at least six months after the one that wrote it.
"""

from typing import NamedTuple

import jax


class ForwardInverse(NamedTuple):
  """The two directions of a bijection, each `call`ed as `(input) -> (output, logdet)`."""

  forward: jax.export.Exported
  inverse: jax.export.Exported


def export_forward_inverse(
    model,
    variables,
    example: jax.Array | jax.ShapeDtypeStruct,
    *,
    platforms: tuple[str, ...] | None = None,
) -> ForwardInverse:
  """Exports `model.apply(variables, x)` and its inverse in evaluation mode (`train=False`).

  Args:
    model: a `Bijection` (a block, `FiRevNet`, ...) with `__call__` and `inverse`.
    variables: its variables, e.g. from `model.init` or a trained run's checkpoint.
    example: an input batch or its `jax.ShapeDtypeStruct`; its shape past the
      batch axis and its dtype are fixed, the batch axis becomes a symbolic
      dimension `b`, so the artefacts take any batch size.
    platforms: the platforms to compile for ("cpu", "cuda", "rocm", "tpu");
      None is the platform of the default backend.

  Returns:
    `ForwardInverse` of `jax.export.Exported`: `forward.call(x) -> (z, logdet)`
    and `inverse.call(z) -> (x, logdet)`; `.serialize()` gives their bytes,
    `jax.export.deserialize(bytes)` reads them back.
  """
  (batch,) = jax.export.symbolic_shape("b")
  x_spec = jax.ShapeDtypeStruct((batch, *example.shape[1:]), example.dtype)

  def forward(x):
    return model.apply(variables, x)

  def inverse(z):
    return model.apply(variables, z, method=model.inverse)

  z_spec, _ = jax.eval_shape(forward, x_spec)
  export = lambda function, spec: jax.export.export(jax.jit(function), platforms=platforms)(spec)
  return ForwardInverse(export(forward, x_spec), export(inverse, jax.ShapeDtypeStruct(z_spec.shape, z_spec.dtype)))
