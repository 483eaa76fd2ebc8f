"""One training step of the two-player game, and one evaluation step.

Per batch (SPEC 5, the authors' schedule): the nuisance classifier takes
`steps_per_batch` updates on the stop-gradient z_n with the true labels; then
the flow takes one update on its loss L (`invjax.objective`: the weighted
sum of the registered terms, w_ce L_sCE + w_nuisance L_nCE + w_mle L_MLE + ...) against the updated
classifier. The flow's forward pass runs once: its pullback
(`jax.vjp`) is kept while the classifier trains on its output.

With `nuisance_classifier.reset_every_steps = R > 0` the classifier and its
optimizer state start afresh (a new random initialisation) before its updates
at every step that is a multiple of R, so no classifier plays against the flow
for more than R steps. It tests whether the flow only fools the classifier it
has learned to fool: against one classifier that keeps training, z_n ends up
hiding the label from it while a post-hoc classifier still reads it. On binary
shiftMNIST resets did not change that (docs/results.md, "Longer training").

With `nuisance_classifier.replay_batches = K > 1` its updates read the z_n (and
labels) of the last K batches, the current one included, each stored as the
flow made it (`TrainState.nuisance_replay`; at step 0 the batch fills every
slot). A classifier that trains on K times the examples is closer to the
post-hoc classifier that reads z_n after training, and the flow's term plays
against it.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from invjax import data, logit_norm, losses, models, objective
from invjax.train import state as state_lib

Metrics = dict[str, jax.Array]


def _nuisance_updates(classifier, tx, steps, params, opt_state, z_n, labels, key):
  """`steps` classifier updates on fixed features; returns params, state and the last loss."""

  def update(carry, step_key):
    params, opt_state = carry
    logits_fn = lambda p: classifier.apply({"params": p}, z_n, train=True, rngs={"dropout": step_key})
    params, opt_state, loss, _ = losses.cross_entropy_step(logits_fn, tx, params, opt_state, labels)
    return (params, opt_state), loss

  (params, opt_state), step_losses = jax.lax.scan(update, (params, opt_state), jax.random.split(key, steps))
  return params, opt_state, step_losses[-1]


def _reset_if_due(classifier, tx, reset_every_steps, step, params, opt_state, z_n, key):
  """Fresh classifier parameters and optimizer state when `step` is a multiple of
  `reset_every_steps` (never when it is 0); otherwise `params` and `opt_state`."""
  if not reset_every_steps:
    return params, opt_state

  def fresh():
    new_params = classifier.init(key, z_n)["params"]
    return new_params, tx.init(new_params)

  return jax.lax.cond(step % reset_every_steps == 0, fresh, lambda: (params, opt_state))


def _replayed(replay: dict, step: jax.Array, z_n: jax.Array, labels: jax.Array):
  """(buffer, z_n rows, label rows): `replay` with this batch in slot `step % K` (every slot at step 0),
  and the K * B examples the classifier trains on; the batch alone where there is no buffer (K = 1)."""
  if not replay:
    return replay, z_n, labels
  slots = replay["labels"].shape[1]
  batch = {"z_n": z_n, "labels": labels}

  def fill_every_slot():
    return {name: jnp.broadcast_to(batch[name][:, None], stored.shape).astype(stored.dtype)
            for name, stored in replay.items()}

  def fill_one_slot():
    return {name: stored.at[:, step % slots].set(batch[name].astype(stored.dtype)) for name, stored in replay.items()}

  replay = jax.lax.cond(step == 0, fill_every_slot, fill_one_slot)
  return replay, replay["z_n"].reshape(-1, z_n.shape[1]), replay["labels"].reshape(-1)


def make_train_step(
    config: ml_collections.ConfigDict,
    model: nn.Module,
    nuisance_classifier: nn.Module,
    flow_tx: optax.GradientTransformation,
    nuisance_tx: optax.GradientTransformation,
) -> Callable[[state_lib.TrainState, dict, jax.Array], tuple[state_lib.TrainState, Metrics]]:
  """`train_step(state, batch, key) -> (state, metrics)`, pure and ready for `jax.jit`.

  `key` is the run's base key; the step folds in `state.step`, so dequantisation,
  dropout and label-shuffling noise differ at every step and are reproducible.
  """
  weights = config.loss
  is_flow = config.model.kind == "fi_revnet"
  num_classes = config.num_classes
  part = weights.get("penalised_part", objective.ALL_OF_Z_N)
  penalised_columns = slice(None) if part == objective.ALL_OF_Z_N else model.nuisance_parts()[part]

  def train_step(state, batch, key):
    key = jax.random.fold_in(key, state.step)
    dequantize_key, dropout_key, nuisance_key, shuffle_key, reset_key = jax.random.split(key, 5)
    images, labels = batch["image"], batch["label"]
    if config.dequantize:
      images = data.dequantize(dequantize_key, images)

    def forward(model_params):
      method = "density" if is_flow else None  # a flow also gives the latent its density models
      return model.apply({"params": model_params}, images, train=True, rngs={"dropout": dropout_key},
                         method=method)

    outputs, pullback = jax.vjp(forward, state.flow["model"])
    metrics = {}
    nuisance, nuisance_opt_state, replay = state.nuisance, state.nuisance_opt_state, state.nuisance_replay
    if is_flow:
      _, z_n = models.split_latent(outputs[0], num_classes)
      z_n = jax.lax.stop_gradient(z_n)
      nuisance, nuisance_opt_state = _reset_if_due(
          nuisance_classifier, nuisance_tx, config.nuisance_classifier.reset_every_steps,
          state.step, nuisance, nuisance_opt_state, z_n, reset_key,
      )
      replay, classifier_z_n, classifier_labels = _replayed(replay, state.step, z_n, labels)
      nuisance, nuisance_opt_state, metrics["nuisance_classifier_loss"] = _nuisance_updates(
          nuisance_classifier, nuisance_tx, config.nuisance_classifier.steps_per_batch,
          nuisance, nuisance_opt_state, classifier_z_n, classifier_labels, nuisance_key,
      )

    def flow_loss(outputs, head_params):
      if is_flow:
        z, _, density_latent, density_logdet = outputs
        z_s, z_n = models.split_latent(z, num_classes)
        logits = logit_norm.classifier_logits(z_s, head_params.get("logit_norm"), batch_statistics=True)
        latent_nll = losses.FactorialGaussian().apply(
            {"params": head_params["prior"]}, losses.modelled_latent(density_latent, num_classes, weights))
        inputs = objective.TermInputs(
            logits, labels, num_classes, shuffle_key, weights, z_n=z_n, logdet=density_logdet,
            nuisance_logits=nuisance_classifier.apply({"params": nuisance}, z_n),
            latent_nll=latent_nll, num_dims=z.shape[1], penalised_z_n=z_n[:, penalised_columns])
      else:
        logits = outputs
        inputs = objective.TermInputs(logits, labels, num_classes, shuffle_key, weights)
      total, terms = objective.evaluate(inputs, has_latent=is_flow, step=state.step)
      return total, {**terms, "error": losses.error_rate(logits, labels)}

    # The flow's parameters other than the model's: the prior and the logit head, where the run has them.
    head_params = {name: params for name, params in state.flow.items() if name != "model"}
    (loss, terms), (output_grads, head_grads) = jax.value_and_grad(flow_loss, (0, 1), has_aux=True)(
        outputs, head_params)
    (model_grads,) = pullback(output_grads)
    grads = {"model": model_grads, **head_grads}
    updates, flow_opt_state = flow_tx.update(grads, state.flow_opt_state, state.flow)
    flow = optax.apply_updates(state.flow, updates)
    if "logit_norm" in flow:
      # Its running statistics had no gradient (training reads the batch's): they move here.
      flow["logit_norm"] = logit_norm.update_statistics(
          flow["logit_norm"], models.split_latent(outputs[0], num_classes)[0])
    new_state = state.replace(
        step=state.step + 1,
        flow=flow,
        flow_opt_state=flow_opt_state,
        nuisance=nuisance,
        nuisance_opt_state=nuisance_opt_state,
        nuisance_replay=replay,
    )
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics, **terms}

  return train_step


TOP_K = 5  # ImageNet's second error rate: the label is not among the 5 largest logits


def _top_k_errors(logits, labels, mask):
  label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)
  rank = jnp.sum(logits > label_logit, axis=-1)  # logits strictly above the label's
  return jnp.sum(mask * (rank >= TOP_K))


def make_eval_step(config, model, nuisance_classifier) -> Callable[[state_lib.TrainState, dict], Metrics]:
  """`eval_step(state, batch) -> sums` over the real (mask) examples of a batch:
  logit errors (and top-5 logit errors with more than 5 classes), nuisance-classifier
  errors, bits/dim and the example count."""
  is_flow = config.model.kind == "fi_revnet"

  def eval_step(state, batch):
    mask = batch["mask"].astype(jnp.float32)
    labels = batch["label"]
    outputs = model.apply({"params": state.flow["model"]}, batch["image"], method="density" if is_flow else None)
    if is_flow:
      z, _, density_latent, density_logdet = outputs
      z_s, z_n = models.split_latent(z, config.num_classes)
      logits = logit_norm.classifier_logits(z_s, state.flow.get("logit_norm"))
    else:
      logits = outputs
    sums = {"count": jnp.sum(mask), "logit_errors": jnp.sum(mask * (jnp.argmax(logits, -1) != labels))}
    if config.num_classes > TOP_K:
      sums[f"logit_top{TOP_K}_errors"] = _top_k_errors(logits, labels, mask)
    if not is_flow:
      return sums
    nuisance_logits = nuisance_classifier.apply({"params": state.nuisance}, z_n)
    modelled = losses.modelled_latent(density_latent, config.num_classes, config.loss)
    bits = losses.bits_per_dim(
        losses.FactorialGaussian().apply({"params": state.flow["prior"]}, modelled), density_logdet, z.shape[1])
    sums["nuisance_errors"] = jnp.sum(mask * (jnp.argmax(nuisance_logits, -1) != labels))
    sums["bits_per_dim"] = jnp.sum(mask * bits)
    return sums

  return eval_step
