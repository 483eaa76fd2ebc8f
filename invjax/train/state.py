"""The two players' parameters and optimizer states, and how they are built from a config."""

import dataclasses
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from invjax import data, logit_norm, losses, models

MODEL_KINDS = ("fi_revnet", "cnn")
FI_REVNET_FIELDS = (
    "num_levels", "steps_per_level", "split", "split_prior", "width", "coupling", "permutation", "readout", "dropout",
    "backprop",
)


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue: the step, both players and their optimizers.

  `flow` holds {"model": model params, "prior": FactorialGaussian params} and,
  with `config.loss.logit_batch_norm`, "logit_norm" (`invjax.logit_norm`'s head) (the
  minimising player); `nuisance` the nuisance classifier's params (the
  maximising player; empty for a CNN, which has no nuisance latent).
  `nuisance_replay` holds what the nuisance classifier trains on besides the
  current batch: with `config.nuisance_classifier.replay_batches` = K > 1, the z_n
  and labels of the last K batches, {"z_n": (B, K, D - C), "labels": (B, K)} (empty
  otherwise). Like the rest of the state, every device holds all of it: K * B *
  (D - C) numbers, 6.3 MB of float32 at K = 8 on MNIST's batch of 64 (D - C = 3,062).
  """

  step: jax.Array
  flow: Any
  flow_opt_state: Any
  nuisance: Any
  nuisance_opt_state: Any
  nuisance_replay: Any = flax.struct.field(default_factory=dict)


def build_model(model_config: ml_collections.ConfigDict, image_shape, num_classes: int) -> nn.Module:
  """The classifier of a run: a FiRevNet (MNIST preset plus the config's fields: fiRevNet48 is
  configs/imagenet.py's fields) or a CNN."""
  if model_config.kind == "cnn":  # channels and hidden are optional (configs/mnist_demo.py's small CNN)
    sizes = {field: model_config[field] for field in ("channels", "hidden") if field in model_config}
    if "channels" in sizes:
      sizes["channels"] = tuple(sizes["channels"])
    return models.CNN(num_classes=num_classes, dropout=model_config.get("dropout", 0.3), **sizes)
  if model_config.kind != "fi_revnet":
    raise ValueError(f"config.model.kind must be one of {MODEL_KINDS}; got {model_config.kind!r}.")
  overrides = {field: model_config[field] for field in FI_REVNET_FIELDS if field in model_config}
  if isinstance(overrides.get("steps_per_level"), list):
    overrides["steps_per_level"] = tuple(overrides["steps_per_level"])
  compute_dtype = model_config.get("compute_dtype")
  return models.fi_revnet_mnist(
      image_shape=tuple(image_shape),
      num_classes=num_classes,
      compute_dtype=jnp.dtype(compute_dtype) if compute_dtype else None,
      **overrides,
  )


def check_model_input(config: ml_collections.ConfigDict) -> None:
  """Raises a ValueError if the config's fi-RevNet cannot take its dataset's inputs: each of
  its levels halves the image, so 2**num_levels must divide the height and width."""
  if config.model.kind != "fi_revnet":
    return
  shape = data.input_shape(config.dataset, **config.dataset_options)
  try:
    build_model(config.model, shape, config.num_classes).level_shapes()
  except ValueError:
    levels = config.model.num_levels
    raise ValueError(
        f"{config.dataset} inputs of shape {shape} do not fit config.model.num_levels={levels}: each level "
        f"halves the image, so height and width must be multiples of 2**{levels} = {2**levels} (for imagenet "
        f"set config.dataset_options.image_size to one, e.g. {7 * 2**levels}).") from None


def build_nuisance_classifier(config: ml_collections.ConfigDict, num_classes: int):
  return losses.NuisanceClassifier(
      num_classes=num_classes,
      hidden=tuple(config.nuisance_classifier.hidden),
      dropout=config.nuisance_classifier.dropout,
  )


def flow_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.GradientTransformation:
  """Adamax with the learning rate multiplied by `decay_factor` at each of `decay_epochs`,
  after a linear warm-up from 0 over `warmup_epochs` (optional; 0: none)."""
  opt = config.optimizer
  schedule = optax.piecewise_constant_schedule(
      opt.learning_rate,
      {int(epoch * steps_per_epoch): opt.decay_factor for epoch in opt.decay_epochs},
  )
  warmup_steps = int(opt.get("warmup_epochs", 0) * steps_per_epoch)
  if warmup_steps:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, opt.learning_rate, warmup_steps), schedule], [warmup_steps])
  chain = [optax.clip_by_global_norm(opt.clip_norm)] if opt.clip_norm else []
  return optax.chain(*chain, optax.adamax(schedule))


def nuisance_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optax.adamax(config.nuisance_classifier.learning_rate)


def create(
    config: ml_collections.ConfigDict,
    model: nn.Module,
    nuisance_classifier: nn.Module,
    flow_tx: optax.GradientTransformation,
    nuisance_tx: optax.GradientTransformation,
    first_images: jax.Array,
    key: jax.Array,
) -> TrainState:
  """A fresh state; ActNorm layers initialise from `first_images` (SPEC 3), with the
  dequantisation noise of training when the config adds it."""
  model_key, prior_key, nuisance_key, noise_key = jax.random.split(key, 4)
  if config.dequantize:
    first_images = data.dequantize(noise_key, first_images)
  model_params = model.init(model_key, first_images)["params"]
  flow = {"model": model_params}
  nuisance, replay = {}, {}
  if config.model.kind == "fi_revnet":
    z, _, density_latent, _ = model.apply({"params": model_params}, first_images, method="density")
    _, z_n = models.split_latent(z, model.num_classes)
    modelled = losses.modelled_latent(density_latent, model.num_classes, config.loss)
    flow["prior"] = losses.FactorialGaussian().init(prior_key, modelled)["params"]
    if config.loss.get("logit_batch_norm", False):
      flow["logit_norm"] = logit_norm.init(model.num_classes)
    nuisance = nuisance_classifier.init(nuisance_key, z_n)["params"]
    replay = empty_replay(config, z_n)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      flow=flow,
      flow_opt_state=flow_tx.init(flow),
      nuisance=nuisance,
      nuisance_opt_state=nuisance_tx.init(nuisance),
      nuisance_replay=replay,
  )


def replay_batches(config: ml_collections.ConfigDict) -> int:
  """K, the number of latest batches the nuisance classifier trains on (1 where a config predates it)."""
  return config.nuisance_classifier.get("replay_batches", 1)


def empty_replay(config: ml_collections.ConfigDict, z_n: jax.Array) -> dict:
  """The replay buffer of `TrainState` before the first step (zeros; the first step fills every
  slot), or {} with K = 1. Sized by `config.batch_size`, not by `z_n`'s batch."""
  k = replay_batches(config)
  if k == 1:
    return {}
  batch = config.batch_size
  return {"z_n": jnp.zeros((batch, k, z_n.shape[1]), z_n.dtype), "labels": jnp.zeros((batch, k), jnp.int32)}


def stored(state: TrainState) -> dict:
  """The tree a checkpoint holds: the state's fields, without an empty replay buffer, so that a run
  without one saves (and reads) the layout that checkpoints had before the buffer existed."""
  fields = {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
  if not fields["nuisance_replay"]:
    del fields["nuisance_replay"]
  return fields


def from_stored(tree: dict) -> TrainState:
  return TrainState(**tree)


@dataclasses.dataclass(frozen=True)
class Parts:
  """The modules and optimizers of a run, all derived from its config."""

  config: ml_collections.ConfigDict
  model: nn.Module
  nuisance_classifier: nn.Module
  flow_tx: optax.GradientTransformation
  nuisance_tx: optax.GradientTransformation

  def create_state(self, first_images: jax.Array, key: jax.Array) -> TrainState:
    return create(self.config, self.model, self.nuisance_classifier, self.flow_tx,
                  self.nuisance_tx, first_images, key)


def build(config: ml_collections.ConfigDict, steps_per_epoch: int) -> Parts:
  return Parts(
      config=config,
      model=build_model(config.model, data.input_shape(config.dataset, **config.dataset_options),
                        config.num_classes),
      nuisance_classifier=build_nuisance_classifier(config, config.num_classes),
      flow_tx=flow_optimizer(config, steps_per_epoch),
      nuisance_tx=nuisance_optimizer(config),
  )
