r"""The flow's objective: a weighted sum of registered loss terms, one record per term.

  L = sum_t  config.loss[t.weight] * r_t(step) * t.compute(inputs)

r_t is 1 except for the independence terms (`Term.independence`: the nuisance
game and the penalties on z_n), which `independence_ramp` can switch on late:
r(step) = clip((step - independence_start_step) / independence_ramp_steps, 0, 1)
(a step function without a ramp). The flow can then learn logits that carry the
class with cross-entropy (and MLE) alone before anything asks z_n to lose it.
The penalties on z_n read all of it, or the one part `config.loss.penalised_part`
names (`FiRevNet.nuisance_parts`: "final", "split_1", ...): where the label stays.

`TERMS` is the one place a loss term is declared. Its record says what the term
computes (a pure function of `TermInputs`), which `config.loss` field weights it
and its default, whether it reads the nuisance latent z_n (only a fi-RevNet has
one; validation refuses such a weight for a CNN), and whether it is reported
even at weight 0 (the CE, nuisance-game and bits/dim terms every run logs). The
train step (`invjax.train.step`), config validation, the base config's defaults
and the results collection all read `TERMS`. To add a term: write its function
(in `invjax.losses` or `invjax.independence`), add one `Term` here, and test it
(a case where it must be near zero and one where it must not).
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from invjax import independence, losses


class TermInputs(NamedTuple):
  """What a term may read in a train step; fields a CNN lacks are None.

  Attributes:
    logits: (B, C) the classifier's logits z_s.
    labels: (B,) integer labels.
    num_classes: C.
    key: a PRNG key for the step's term noise (split per term by name).
    options: `config.loss` (for options such as `nuisance_form`).
    z_n: (B, D - C) the nuisance latent.
    logdet: (B,) log|det dz/dx|.
    nuisance_logits: (B, C) the nuisance classifier's logits on z_n (its parameters fixed).
    latent_nll: (B,) -log N(z_n) under the learned factorial Gaussian prior (nats).
    num_dims: D, the input dimension (for bits/dim).
    penalised_z_n: (B, P) the part of z_n that the penalties on z_n read (`config.loss.penalised_part`,
      a part of `FiRevNet.nuisance_parts`); None: all of z_n.
  """

  logits: jax.Array
  labels: jax.Array
  num_classes: int
  key: jax.Array
  options: object
  z_n: jax.Array | None = None
  logdet: jax.Array | None = None
  nuisance_logits: jax.Array | None = None
  latent_nll: jax.Array | None = None
  num_dims: int = 0
  penalised_z_n: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Term:
  """One loss term.

  Attributes:
    name: its metric name (logged as is).
    weight: the `config.loss` field that weights it.
    default_weight: that field's default in `configs/base.py`.
    compute: `compute(inputs: TermInputs) -> scalar`.
    reads_latent: whether it reads z_n (fi-RevNet only).
    always_reported: computed and logged even when its weight is 0.
    independence: whether it asks z_n to lose the label (delayed by `independence_ramp`).
  """

  name: str
  weight: str
  default_weight: float
  compute: Callable[[TermInputs], jax.Array]
  reads_latent: bool
  always_reported: bool = False
  independence: bool = False


def _term_key(inputs: TermInputs, name: str) -> jax.Array:
  return jax.random.fold_in(inputs.key, sum(map(ord, name)))


def _penalised(inputs: TermInputs) -> jax.Array:
  return inputs.z_n if inputs.penalised_z_n is None else inputs.penalised_z_n


TERMS: tuple[Term, ...] = (
    Term("cross_entropy", "ce_weight", 1.0, lambda i: losses.cross_entropy(i.logits, i.labels),
         reads_latent=False, always_reported=True),
    Term("logit_penalty", "logit_penalty_weight", 0.0, lambda i: losses.logit_penalty(i.logits),
         reads_latent=False),
    Term("nuisance", "nuisance_weight", 0.0,
         lambda i: losses.nuisance_term(i.nuisance_logits, i.labels, i.options.nuisance_form, i.key),
         reads_latent=True, always_reported=True, independence=True),
    Term("bits_per_dim", "mle_weight", 0.0,
         lambda i: jnp.mean(losses.bits_per_dim(i.latent_nll, i.logdet, i.num_dims)),
         reads_latent=True, always_reported=True),
    Term("label_dependence", "label_dependence_weight", 0.0,
         lambda i: losses.label_dependence(_penalised(i), i.labels, i.num_classes), reads_latent=True,
         independence=True),
    Term("class_mean_gap", "class_mean_gap_weight", 0.0,
         lambda i: independence.class_mean_gap(_penalised(i), i.labels, i.num_classes), reads_latent=True,
         independence=True),
    Term("random_feature_gap", "random_feature_gap_weight", 0.0,
         lambda i: independence.random_feature_gap(_penalised(i), i.labels, i.num_classes,
                                                   _term_key(i, "random_feature_gap")),
         reads_latent=True, independence=True),
)

# `config.loss.penalised_part` for all of z_n; the other values are the names of `FiRevNet.nuisance_parts`.
ALL_OF_Z_N = "all"

LATENT_TERM_WEIGHTS = tuple(term.weight for term in TERMS if term.reads_latent)


def default_weights() -> dict[str, float]:
  """{config.loss field: default} of every term."""
  return {term.weight: term.default_weight for term in TERMS}


def weight_of(loss_options, term: Term) -> float:
  """The term's weight in `config.loss` (0 where a config predates the term)."""
  return float(loss_options.get(term.weight, 0.0))


def independence_ramp(loss_options, step: jax.Array) -> jax.Array:
  """r(step) of the module docstring: 0 before `independence_start_step`, then 1 (or a linear ramp over
  `independence_ramp_steps`); 1 throughout where the config sets neither."""
  start = loss_options.get("independence_start_step", 0)
  ramp = loss_options.get("independence_ramp_steps", 0)
  elapsed = jnp.asarray(step, jnp.float32) - start
  return jnp.clip(elapsed / ramp if ramp else (elapsed >= 0).astype(jnp.float32), 0.0, 1.0)


def evaluate(inputs: TermInputs, has_latent: bool, step: jax.Array | int = 0
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(L, {name: value}) at training step `step` over the terms that apply (latent terms only with a
  latent) and are weighted or always reported; values are logged unscaled by the ramp."""
  total, values = jnp.zeros((), jnp.float32), {}
  ramp = independence_ramp(inputs.options, step)
  for term in TERMS:
    weight = weight_of(inputs.options, term)
    if (term.reads_latent and not has_latent) or not (weight or term.always_reported):
      continue
    values[term.name] = term.compute(inputs)
    if weight:
      total = total + weight * (ramp if term.independence else 1.0) * values[term.name]
  return total, values
