"""Settings shared by every run: the paper's MNIST fi-RevNet trained with plain cross-entropy.

The other config files start from `get_config()` and change what differs. Each
takes an optional argument after a colon: `tiny` gives a few-hundred-step run
for this 2-core CPU (about two minutes); `cpu` gives the small model trained
for a few epochs, the setting of docs/results.md on that CPU; `full` trains the
paper's model for those epochs.
"""

import ml_collections

from invjax import objective

MNIST_TRAIN_EXAMPLES = 60_000


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.dataset = "mnist"
  config.dataset_options = ml_collections.ConfigDict()
  config.num_classes = 10
  config.seed = 0
  config.batch_size = 128
  config.eval_batch_size = 500
  config.total_steps = 200 * (MNIST_TRAIN_EXAMPLES // 128)  # 200 epochs (SPEC 5)
  config.eval_splits = ("test",)
  config.eval_examples = 0  # 0: the whole split
  config.train_eval_examples = 10_000
  config.dequantize = True
  config.log_every_steps = 50
  config.eval_every_steps = 5_000
  config.checkpoint_every_steps = 1_000
  config.keep_checkpoints = 3
  config.profile_steps = ""  # "first,last", e.g. "10,20": a jax.profiler trace of those steps in <workdir>/profile/

  config.model = ml_collections.ConfigDict()
  config.model.kind = "fi_revnet"
  config.model.num_levels = 3
  config.model.steps_per_level = 16
  config.model.width = 128
  config.model.coupling = "additive"
  config.model.permutation = "reverse"
  config.model.readout = "center"
  config.model.split = True  # False: no latent leaves before the last level (all of z_n from the full depth)
  config.model.split_prior = False  # True: Glow's learned prior on each split latent (blocks.SplitPrior)
  config.model.dropout = 0.1
  config.model.compute_dtype = ""  # e.g. "bfloat16" for the coupling networks' operands
  # "remat": autodiff's gradients, each flow step's activations recomputed in the
  # backward pass instead of stored; on the 2-core CPU the train step is 1.3x
  # faster than with "autodiff", which stores them (docs/performance.md).
  # "reversible" rebuilds activations with the exact inverse, so memory does not
  # grow with depth; its float32 gradients differ from autodiff's by more than
  # rounding where a ReLU flips.
  config.model.backprop = "remat"

  # One weight per loss term of invjax/objective.py's registry (ce_weight 1, the others 0).
  config.loss = ml_collections.ConfigDict(objective.default_weights())
  config.loss.nuisance_form = "paper"  # or "shuffled" (the authors' code), "shuffled_negated" (its 2020 sign)
  config.loss.mle_over = "z_n"  # or "z": the density models the logits too (the authors' code)
  config.loss.logit_batch_norm = False  # True: the classifier reads batch-normalised logits (invjax.logit_norm)
  # The independence terms (nuisance game, penalties on z_n) switch on at this step, over a linear ramp of
  # this many steps (objective.independence_ramp): cross-entropy first, then the label leaves z_n.
  config.loss.independence_start_step = 0
  config.loss.independence_ramp_steps = 0
  # What the penalties on z_n read: "all" of it, or one part (FiRevNet.nuisance_parts: "final", "split_1", ...).
  config.loss.penalised_part = "all"

  config.nuisance_classifier = ml_collections.ConfigDict()
  config.nuisance_classifier.hidden = (512, 512)
  config.nuisance_classifier.dropout = 0.1
  config.nuisance_classifier.steps_per_batch = 5
  config.nuisance_classifier.learning_rate = 1e-3
  config.nuisance_classifier.reset_every_steps = 0  # 0: never; R: a fresh classifier every R steps
  config.nuisance_classifier.replay_batches = 1  # K: its updates read the z_n of the last K batches (step.py)

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 1e-3
  config.optimizer.decay_epochs = (60, 120, 160)
  config.optimizer.decay_factor = 0.2
  config.optimizer.clip_norm = 0.0  # 0: no clipping

  # Shift-blind model selection (invjax/train/selection/, docs/selection.md); every field is off by
  # default, so that runs saved before it existed resume unchanged.
  config.selection = ml_collections.ConfigDict()
  config.selection.holdout_examples = 0  # 0: off; n: the last n training examples are held out, never trained on
  config.selection.probe_examples = 0  # training examples a fresh nuisance classifier learns from; 0: holdout_examples
  config.selection.every_steps = 0  # 0: at every evaluation
  config.selection.logit_error_tolerance = 0.0  # points of held-out logit error traded for a label-free z_n
  return config


def make_tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A small model and a few hundred steps: about two minutes on the 2-core CPU."""
  if config.model.kind == "fi_revnet":
    config.model.steps_per_level = 4
    config.model.width = 48
  config.batch_size = 64
  config.total_steps = 400
  config.optimizer.decay_epochs = ()
  config.nuisance_classifier.hidden = (256, 256)
  config.eval_examples = 2_000
  config.train_eval_examples = 2_000
  config.log_every_steps = 25
  config.eval_every_steps = 400
  config.checkpoint_every_steps = 100
  return config


CPU_EPOCHS = 3


def with_cpu_schedule(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """CPU_EPOCHS epochs at the config's batch size, the learning rate decayed before the
  last one, evaluated on whole splits after every epoch."""
  steps_per_epoch = MNIST_TRAIN_EXAMPLES // config.batch_size
  config.total_steps = CPU_EPOCHS * steps_per_epoch
  config.optimizer.decay_epochs = (CPU_EPOCHS - 1,)
  config.eval_examples = 0
  config.train_eval_examples = 10_000
  config.log_every_steps = 50
  config.eval_every_steps = steps_per_epoch
  return config


def make_cpu(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The tiny model for CPU_EPOCHS epochs, evaluated on whole splits (docs/results.md)."""
  config = with_cpu_schedule(make_tiny(config))
  config.checkpoint_every_steps = 200
  return config


def make_full(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The paper's model (3 levels x 16 steps, width 128, batch 128) on the `cpu` schedule.

  Reversible backprop: on the 2-core CPU it trains as fast as the default "remat"
  and 1.3x faster than autodiff that stores activations, keeping 0.15 instead of
  1.8 GiB of them (docs/performance.md, "Depth"). The runs of docs/results.md
  were started with it.
  """
  config = with_cpu_schedule(config)
  if config.model.kind == "fi_revnet":
    config.model.backprop = "reversible"
  config.checkpoint_every_steps = 100
  return config


def with_ice(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The independence cross-entropy (SPEC 5): nuisance game and MLE switched on.

  The nuisance term takes the authors' code's shuffled-label form at weight 1:
  on binary shiftMNIST the paper's form (-CE, at weight 0.1 or 1) lets the
  nuisance classifier win and the logits learn the code (docs/results.md).
  """
  config.loss.nuisance_weight = 1.0
  config.loss.nuisance_form = "shuffled"
  config.loss.mle_weight = 1.0
  return config


def apply_variant(config: ml_collections.ConfigDict, argument: str | None) -> ml_collections.ConfigDict:
  if argument in (None, ""):
    return config
  if argument == "tiny":
    return make_tiny(config)
  if argument == "cpu":
    return make_cpu(config)
  if argument == "full":
    return make_full(config)
  raise ValueError(f"Unknown config variant {argument!r}: use nothing, ':tiny', ':cpu' or ':full'.")
