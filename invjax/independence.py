r"""Label-independence penalties on z_n with no player to outrun (ours; science issue).

The nuisance game (`losses.nuisance_term`) asks one trained classifier to fail on
z_n; the flow learns to fool *that* classifier while a fresh one still reads the
label (docs/results.md). The penalties here measure the label's imprint on a
batch in closed form, so there is nothing to fool: they are zero exactly when
the class-conditional means of the features equal the batch mean.

Both measure, for each feature, the share of its batch variance that the class
explains (the correlation ratio eta^2), and sum it over features:

  gap(f, y) = sum_features [ sum_k p_k * mean_k(c)^2 ] - F (K - 1) / (B - 1),
  c = (f - mean(f)) / std(f)  (over the batch, differentiated through),

with p_k = n_k / B the share of class k in the batch and K the number of
classes present. eta^2 is in [0, 1] and does not change when the flow scales a
feature, so the only way to lower it is to bring the class means together
relative to the spread. The constant (K - 1) / (B - 1) is its expectation when
the feature does not depend on the class (exact for Gaussian features: eta^2 is
then Beta((K-1)/2, (B-K)/2)), so the gap scatters around 0 for independent
features and counts how many features' worth of variance the class explains
otherwise (up to F). Summed rather than averaged, each feature's gradient is on
the scale of the cross-entropy's on a logit, whatever the number of features.

(An unbiased U-statistic of the class means, the first version of this term,
can go negative; with the standard deviation held fixed, the flow drove it to
-19 within 100 steps by inflating z_n, at 89% training error. The ratio eta^2
leaves nothing to inflate.)

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
  """(features - batch mean) / batch std, per column."""
  centred = features - jnp.mean(features, axis=0)
  return centred / jnp.sqrt(jnp.mean(jnp.square(centred), axis=0) + 1e-12)


def _explained_share(standardised: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """Sum over columns of the class's share of the column's variance, less its value under independence."""
  batch = standardised.shape[0]
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=standardised.dtype)  # (B, K)
  counts = jnp.sum(one_hot, axis=0)  # (K,)
  class_means = (one_hot.T @ standardised) / jnp.maximum(counts, 1.0)[:, None]  # (K, F)
  explained = jnp.sum((counts / batch)[:, None] * jnp.square(class_means))
  present = jnp.sum(counts > 0)
  return explained - standardised.shape[1] * (present - 1) / (batch - 1)


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
