r"""Label-independence penalties on z_n with no player to outrun (ours; science issue).

The nuisance game (`losses.nuisance_term`) asks one trained classifier to fail on
z_n; the flow learns to fool *that* classifier while a fresh one still reads the
label (docs/results.md). The penalties here measure the label's imprint on a
batch in closed form, so there is nothing to fool: they are zero exactly when
the class-conditional means of the features equal the batch mean.

Both standardise each feature by the batch's mean m and standard deviation s
(stop-gradient statistics), c_i = (f_i - m) / s, and sum over features the
share of each one's variance the label explains, estimated without bias:

  gap(f, y) = sum_features sum_k p_k * mu_k^2,
  mu_k^2    = (S_k^2 - sum_{i in k} c_i^2) / (n_k (n_k - 1)) + 1 / (B - 1),   S_k = sum_{i in k} c_i,

with p_k = n_k / B the share of class k in the batch (classes with n_k < 2 count
zero). The pairs' products estimate (E[c | y = k])^2; the 1 / (B - 1) undoes the
anti-correlation of rows centred on their own mean (sum_i c_i = 0 makes the
products of distinct rows average -1 / (B - 1) when nothing depends on y). It has no
term in the within-class spread, so its gradient moves class means together and
does not shrink z_n. Its value counts how many features' worth of variance the
class explains: 0 for independent features (up to sampling noise, either sign),
up to F when the label sets every feature. Summed rather than averaged, each
feature's gradient, about 2 mu_k / B, is on the scale of the cross-entropy's
on a logit, whatever the number of features.

* `class_mean_gap(z_n, y)`: the features are z_n itself. Zero gap for all
  features means that no linear classifier of z_n beats the constant one
  (Belrose et al., 2023, LEACE: equal class-conditional means are necessary
  and sufficient for linear guardedness).
* `random_feature_gap(z_n, y, key)`: the features are F random ReLU features
  phi_j(c) = relu(w_j . c / sqrt(D) + b_j), w_j ~ N(0, I), b_j ~ N(0, 1), drawn
  afresh from `key` at every step. It is the class-conditional mean
  embedding distance (an MMD with the random-feature kernel) between each
  class and the batch: it also sees differences in spread along random
  directions, which a linear probe cannot, and as the draws change every step
  no fixed set of directions can be fooled.
"""

import jax
import jax.numpy as jnp


def _standardised(features: jax.Array) -> jax.Array:
  """(features - batch mean) / batch std, per column, the statistics held fixed under differentiation."""
  mean = jax.lax.stop_gradient(jnp.mean(features, axis=0))
  std = jax.lax.stop_gradient(jnp.std(features, axis=0))
  return (features - mean) / jnp.maximum(std, 1e-6)


def _explained_share(standardised: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """The unbiased share of each column's variance explained by the class, summed over columns."""
  batch = standardised.shape[0]
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=standardised.dtype)  # (B, K)
  counts = jnp.sum(one_hot, axis=0)  # (K,)
  sums = one_hot.T @ standardised  # (K, F)
  squares = one_hot.T @ jnp.square(standardised)  # (K, F)
  pairs = counts * (counts - 1)
  # Centring on the batch mean makes distinct rows anti-correlated: sum_{i != j} c_i c_j = -B exactly,
  # so under independence a pair's product averages -1 / (B - 1); adding it back makes the estimate unbiased.
  mean_squared = (jnp.square(sums) - squares) / jnp.maximum(pairs, 1.0)[:, None] + 1.0 / (batch - 1)
  weights = jnp.where(counts >= 2, counts / batch, 0.0)
  return jnp.sum(weights[:, None] * mean_squared)


def class_mean_gap(z_n: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """How far z_n's class-conditional means are from the batch mean (see the module doc); >= 0 in expectation."""
  flat = z_n.reshape(z_n.shape[0], -1).astype(jnp.float32)
  return _explained_share(_standardised(flat), labels, num_classes)


def random_feature_gap(
    z_n: jax.Array, labels: jax.Array, num_classes: int, key: jax.Array, num_features: int = 512
) -> jax.Array:
  """`class_mean_gap` of `num_features` random ReLU features of the standardised z_n (module doc)."""
  flat = _standardised(z_n.reshape(z_n.shape[0], -1).astype(jnp.float32))
  weight_key, bias_key = jax.random.split(key)
  weights = jax.random.normal(weight_key, (flat.shape[1], num_features)) / jnp.sqrt(flat.shape[1])
  biases = jax.random.normal(bias_key, (num_features,))
  return _explained_share(_standardised(jax.nn.relu(flat @ weights + biases)), labels, num_classes)
