"""Analyses of trained classifiers: what they are invariant to, and what that costs.

One concept per module:

* `features`: a model's logits or one layer's activations as pure functions.
* `batching`: a jitted function over a large array, chunk by chunk, with progress.
* `oracle`: metamer metrics: oracle agreement and logit preservation.
* `dequantization`: how much a classifier's decisions depend on the training's dequantisation noise.
* `attack`: the gradient-based invariance attack, for any differentiable classifier.
* `posthoc`: the post-hoc nuisance classifier on a frozen model's z_n.
* `external`: checks and conversion of external image sets; confusion matrices.
* `planes`: decision regions on 2D planes through input space.
* `spheres`: the vector fi-RevNet for the concentric spheres and its CE training.

Metameric sampling itself lives in `invjax.metamers`, figures in `invjax.plotting`.
"""

from invjax import _extras

with _extras.train_extra("invjax.analysis"):
  from invjax.analysis import attack, batching, dequantization, external, features, oracle, planes, posthoc, spheres

__all__ = ["attack", "batching", "dequantization", "external", "features", "oracle", "planes", "posthoc", "spheres"]
