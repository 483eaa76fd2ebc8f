r"""Batch normalisation of the logits, the authors' classifier head (`nn.BatchNorm1d(10, momentum=0.9)`).

The authors' fi-RevNet classifies with a batch-normalised copy of z_s, not
z_s itself:

  training:   l = (z_s - m_B) / sqrt(v_B + eps) * scale + bias,
              m_B, v_B the batch's per-class mean and (biased) variance;
  evaluation: l = (z_s - m) / sqrt(v + eps) * scale + bias,
              m, v running averages updated after each training step as
              m <- (1 - momentum) m + momentum m_B and
              v <- (1 - momentum) v + momentum v_B * B / (B - 1)
              (PyTorch's convention: its momentum 0.9 weights the newest batch by 0.9).

The cross-entropy then sees logits whose scale the head learns, while z_s
itself stays part of the flow's latent: under a maximum-likelihood term over
all of z (`config.loss.mle_over = "z"`) the density pulls z_s towards the
prior's scale and the head undoes it. z_s is what metamers swap; the head only
changes what "the model's logits" are, so every reader of logits
(`invjax.train.step`, `invjax.analysis.features.logits_function`) goes through
`classifier_logits`.

The head is a dict {"scale", "bias", "mean", "var"} of (C,) arrays kept in the
flow's parameters (`state.flow["logit_norm"]`): scale and bias are trained,
mean and var are not differentiated (training reads the batch's statistics)
and `update_statistics` overwrites them after each step.
"""

import jax
import jax.numpy as jnp

EPSILON = 1e-5
MOMENTUM = 0.9

Head = dict[str, jax.Array]


def init(num_classes: int) -> Head:
  """The identity at initialisation up to the statistics: scale 1, bias 0, running mean 0, variance 1."""
  return {"scale": jnp.ones((num_classes,), jnp.float32), "bias": jnp.zeros((num_classes,), jnp.float32),
          "mean": jnp.zeros((num_classes,), jnp.float32), "var": jnp.ones((num_classes,), jnp.float32)}


def apply(head: Head, z_s: jax.Array, batch_statistics: bool) -> jax.Array:
  """l (B, C): z_s normalised by the batch's statistics (training) or the running ones (evaluation)."""
  if batch_statistics:
    mean, var = jnp.mean(z_s, axis=0), jnp.var(z_s, axis=0)
  else:
    mean, var = jax.lax.stop_gradient(head["mean"]), jax.lax.stop_gradient(head["var"])
  return (z_s - mean) * jax.lax.rsqrt(var + EPSILON) * head["scale"] + head["bias"]


def update_statistics(head: Head, z_s: jax.Array) -> Head:
  """The head with its running mean and (unbiased) variance moved towards this batch's."""
  batch = z_s.shape[0]
  z_s = jax.lax.stop_gradient(z_s).astype(jnp.float32)
  batch_var = jnp.var(z_s, axis=0) * batch / max(batch - 1, 1)
  return {**head,
          "mean": (1 - MOMENTUM) * head["mean"] + MOMENTUM * jnp.mean(z_s, axis=0),
          "var": (1 - MOMENTUM) * head["var"] + MOMENTUM * batch_var}


def classifier_logits(z_s: jax.Array, head: Head | None, batch_statistics: bool = False) -> jax.Array:
  """The model's logits: z_s itself, or through the head when the run has one."""
  return z_s if head is None else apply(head, z_s, batch_statistics)
