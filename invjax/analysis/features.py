"""What the analyses read off a model: its logits, or one layer's activations.

Both builders return pure functions `(variables, x) -> (B, ...)` for a Flax
classifier, the invertible FiRevNet as well as the plain CNN. They are cached
per model, so passing one to a jitted analysis (which treats it as a static
argument) compiles once per model and not once per call.

A layer is named by its path of Flax module names, "/"-separated, as in the
variables' "params" tree: for `models.CNN`, "Conv_0" ... "Conv_3", "Dense_0"
or "logits"; for the fi-RevNet e.g. "levels_1" (the output of level 2's flow
steps, before the split). The activations are read with Flax's
`capture_intermediates`:

    _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    activations = state["intermediates"]["Conv_1"]["__call__"][0]

(each captured module holds a tuple with one entry per call; an invertible
block's output `(y, logdet)` contributes `y`).
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax

from invjax import logit_norm, models

FeatureFunction = Callable[[dict, jax.Array], jax.Array]


@functools.cache
def logits_function(model: nn.Module) -> FeatureFunction:
  """`(variables, x) -> logits (B, C)`: z_s of a fi-RevNet (through its logit head when `variables`
  has one, under "logit_norm": `invjax.logit_norm`), the output of any other classifier."""
  if isinstance(model, models.FiRevNet):
    def fi_revnet_logits(variables, x):
      z, _ = model.apply(variables, x)
      return logit_norm.classifier_logits(models.split_latent(z, model.num_classes)[0], variables.get("logit_norm"))
    return fi_revnet_logits

  def classifier_logits(variables, x):
    return model.apply(variables, x)
  return classifier_logits


@functools.cache
def layer_function(model: nn.Module, layer: str) -> FeatureFunction:
  """`(variables, x) -> (B, ...)`: the output of the submodule at path `layer` (see the module doc)."""
  path = tuple(layer.split("/"))

  def layer_activations(variables, x):
    _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    captured = state["intermediates"]
    for depth, name in enumerate(path):
      if name not in captured:
        known = sorted(key for key in captured if key != "__call__")
        raise ValueError(
            f"{type(model).__name__} has no layer {'/'.join(path[:depth + 1])!r}; "
            f"the layers at that level are {known}."
        )
      captured = captured[name]
    output = captured["__call__"][0]
    return output[0] if isinstance(output, tuple) else output
  return layer_activations
