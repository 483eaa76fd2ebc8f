r"""The objectives of the paper (SPEC 5): cross-entropy, the nuisance game, and MLE.

For a flow F with F(x) = (z_s, z_n) and a nuisance classifier D_nc, the flow
minimises

  L = w_ce * L_sCE + w_nuisance * L_nCE + w_mle * L_MLE + w_logit * L_logit + w_dep * L_dep

while D_nc minimises its own cross-entropy on the stop-gradient z_n:

  L_sCE = CE(softmax(z_s), y)
  L_nCE = -CE(D_nc(z_n), y)          form 'paper': the flow maximises D_nc's loss
        = +CE(D_nc(z_n), pi(y))      form 'shuffled': the authors' released (2019) code, a
                                      random permutation pi of the batch's labels as target
        = -CE(D_nc(z_n), pi(y))      form 'shuffled_negated': their 2020 update, which
                                      subtracts the same term (it diverged here, issue 27)
  L_MLE = -[log N(z_n; mu, diag(sigma^2)) + log|det dF/dx|] / (d ln 2) + log2(128)
          (over all of z instead of z_n with `mle_over="z"`, the authors' code: `modelled_latent`)
  L_logit = ||z_s||^2 / 2               spectral decoupling (Pezeshki et al., 2021), ours
  L_dep = CKA(k_Gauss(z_n), k_label(y))  kernel dependence of z_n on y (`label_dependence`), ours

The registry of terms, their weights and defaults is `invjax.objective`; the
label-independence penalties without a player are in `invjax.independence`.
L_MLE is in bits per input dimension (d = all entries of x, in [-1, 1] with
bins of width 2/256; see `invjax.data.dequantize`), so its weight compares with
the cross-entropies whatever the image size. CE training is w_nuisance = w_mle = 0.
L_logit (off by default; any classifier, the CNN too) stops the cross-entropy
from growing the margin of one feature without bound once it separates the
data, which can starve the gradient of features learned more slowly. On binary
shiftMNIST it made the shortcut worse (docs/results.md, "Longer training").
L_dep (off by default) measures the dependence of z_n on y without a player
that the flow can outrun. On binary shiftMNIST the flow lowered it all the same,
through the training noise or by reshaping z_n, while a post-hoc classifier
still read the label from z_n, and the shortcut grew (same section).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

NUISANCE_FORMS = ("paper", "shuffled", "shuffled_negated")
# Inputs live in [-1, 1] with 256 bins of width 2/256: -log(2/256) = log(128) nats per dimension.
_LOG_BIN_VOLUME_PER_DIM = np.log(128.0)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of integer `labels` under `logits`, in nats."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def cross_entropy_step(logits_fn, optimizer: optax.GradientTransformation, params, optimizer_state, labels):
  """One `optimizer` step on cross_entropy(logits_fn(params), labels).

  Returns (params, optimizer_state, loss, logits), loss and logits before the step.
  """

  def loss_fn(params):
    logits = logits_fn(params)
    return cross_entropy(logits, labels), logits

  (loss, logits), gradient = jax.value_and_grad(loss_fn, has_aux=True)(params)
  updates, optimizer_state = optimizer.update(gradient, optimizer_state, params)
  return optax.apply_updates(params, updates), optimizer_state, loss, logits


def logit_penalty(logits: jax.Array) -> jax.Array:
  """Spectral decoupling: half the squared norm of the logits, averaged over examples."""
  return 0.5 * jnp.mean(jnp.sum(jnp.square(logits), axis=-1))


def label_dependence(features: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  r"""How much a batch of `features` (B, ...) depends on integer `labels` (B,): kernel CKA in [0, 1].

  With K_ij = exp(-||f_i - f_j||^2 / m), m the median of the squared distances
  (a stop-gradient bandwidth), L_ij = [y_i = y_j], H = I - 11^T / B and
  HSIC(K, L) = tr(K H L H) / (B - 1)^2:

    CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

  The Gaussian kernel is characteristic, so in the large-batch limit HSIC is 0
  exactly when features and labels are independent (Gretton et al., 2005).
  Unlike the nuisance classifier it has no parameters for the flow to outrun.
  """
  flat = features.reshape(features.shape[0], -1)
  squared_norms = jnp.sum(jnp.square(flat), axis=-1)
  squared_distances = jnp.maximum(squared_norms[:, None] + squared_norms[None, :] - 2 * flat @ flat.T, 0.0)
  bandwidth = jax.lax.stop_gradient(jnp.median(squared_distances))
  feature_gram = _centred(jnp.exp(-squared_distances / bandwidth))
  one_hot = jax.nn.one_hot(labels, num_classes)
  label_gram = _centred(one_hot @ one_hot.T)
  cross = jnp.sum(feature_gram * label_gram)
  return cross / jnp.sqrt(jnp.sum(jnp.square(feature_gram)) * jnp.sum(jnp.square(label_gram)))


def _centred(gram: jax.Array) -> jax.Array:
  """H K H: the Gram matrix of the features minus their batch mean."""
  return gram - jnp.mean(gram, 0, keepdims=True) - jnp.mean(gram, 1, keepdims=True) + jnp.mean(gram)


def error_rate(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of examples whose argmax is not the label."""
  return jnp.mean(jnp.argmax(logits, -1) != labels)


class NuisanceClassifier(nn.Module):
  """D_nc: an MLP on z_n (SPEC 5: 3062 -> 512 -> 512 -> 10, ReLU, dropout 0.1)."""

  num_classes: int = 10
  hidden: Sequence[int] = (512, 512)
  dropout: float = 0.1

  @nn.compact
  def __call__(self, z_n: jax.Array, train: bool = False) -> jax.Array:
    h = z_n.reshape(z_n.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return nn.Dense(self.num_classes)(h)


def nuisance_term(
    nuisance_logits: jax.Array, labels: jax.Array, form: str, key: jax.Array
) -> jax.Array:
  """L_nCE, the flow's side of the nuisance game (see the module docstring).

  `key` draws the label permutation of the 'shuffled' form.
  """
  if form == "paper":
    return -cross_entropy(nuisance_logits, labels)
  if form in ("shuffled", "shuffled_negated"):
    sign = 1.0 if form == "shuffled" else -1.0
    return sign * cross_entropy(nuisance_logits, jax.random.permutation(key, labels))
  raise ValueError(f"nuisance form must be one of {NUISANCE_FORMS}; got {form!r}.")


MLE_OVER = ("z_n", "z")


def modelled_latent(z: jax.Array, num_classes: int, loss_options) -> jax.Array:
  """The part of the flat latent the maximum-likelihood term models, as `loss_options.mle_over` says:
  z_n (the default, also for runs saved before the option: the logits are left free of any prior)
  or all of z ("z", the authors' code)."""
  mle_over = loss_options.get("mle_over", "z_n")
  if mle_over == "z":
    return z
  if mle_over == "z_n":
    return z[..., num_classes:]
  raise ValueError(f"config.loss.mle_over must be one of {MLE_OVER}; got {mle_over!r}.")


class FactorialGaussian(nn.Module):
  """A learned per-dimension Gaussian prior; `__call__(z)` is -log N(z) per example (nats)."""

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    mean = self.param("mean", nn.initializers.zeros, z.shape[1:], jnp.float32)
    log_scale = self.param("log_scale", nn.initializers.zeros, z.shape[1:], jnp.float32)
    standardised = (z - mean) * jnp.exp(-log_scale)
    per_dim = 0.5 * standardised**2 + log_scale + 0.5 * np.log(2 * np.pi)
    return jnp.sum(per_dim.reshape(z.shape[0], -1), axis=-1)


def bits_per_dim(negative_log_density: jax.Array, logdet: jax.Array, num_dims: int) -> jax.Array:
  """Per-example bits/dim of discrete inputs from a latent NLL and log|det dz/dx| (nats)."""
  nats = negative_log_density - logdet
  return nats / (num_dims * np.log(2.0)) + _LOG_BIN_VOLUME_PER_DIM / np.log(2.0)
