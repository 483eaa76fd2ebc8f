"""fiRevNet48 on ImageNet (TFDS imagenet2012): the settings configs/imagenet_ce.py and
configs/imagenet_ice.py share.

Model: the 48-step fully invertible RevNet of `models.fi_revnet48_imagenet`
(its layout `models.FI_REVNET48_LAYOUT`, set here field by field):
5 levels of (8, 8, 10, 10, 12) affine steps without splits, width 256, fixed
channel shuffles, the 1000 logits read from the DC coefficients of a 2D DCT of
the final 7x7x3072 maps (SPEC 3).

Default (no argument): the pod setting, for a v4-32 Cloud TPU slice (16
chips, 4 hosts) or a box of 8 GPUs; docs/imagenet.md has the estimate of its
time per epoch and the memory it needs.

* Global batch 1024 (64 per v4 chip, 128 per GPU), data-parallel over one
  mesh axis of all devices (`parallel.make_data_mesh`); each host reads its
  own 1/hosts of the files. Steps per epoch: 1,281,167 // 1024 = 1251.
* 90 epochs with the schedule of the ResNet ImageNet runs (He et al. 2016;
  Goyal et al. 2017): a linear warm-up over 5 epochs, then the learning rate
  divided by 10 at epochs 30, 60 and 80. The optimizer stays the authors'
  Adamax (1e-3, as for MNIST): flows with affine couplings and data-dependent
  ActNorm are trained with Adam-type steps (Glow, the authors' code), whose
  size does not grow with the batch, and the warm-up keeps the first steps
  from undoing the ActNorm initialisation. Global-norm clipping at 100 only
  catches rare spikes; weight decay is off as in the authors' code.
* bfloat16: the coupling networks' convolution operands (accumulation,
  parameters, ActNorm, log-determinants and latents stay float32, so the
  inverse recomputes the same networks and stays exact up to float32
  rounding).
* Reversible backprop (`model.backprop = "reversible"`): activations are
  recomputed from the outputs during the backward pass instead of stored, so
  memory per example does not grow with the 48 steps.

`:tiny`: the same architecture family (5 levels, no splits, affine couplings,
shuffles, DCT readout) with one step per level and width 16 on 32x32 images,
for a few dozen steps: the CI job on the generated tiny ImageNet
(`python -m experiments.prepare_imagenet --write_tiny ...`), in a minute or
two on a 2-core CPU.

Data: `dataset_options.data_dir` is the TFDS data directory (local or
gs://...; "" is TFDS's default, the TFDS_DATA_DIR environment variable) and
`dataset_options.manual_dir` the folder of the two tars, needed only until
the dataset is prepared ("" reads INVJAX_IMAGENET_DIR).
"""

import ml_collections

from configs import base
from invjax import models

TRAIN_EXAMPLES = 1_281_167
POD_BATCH_SIZE = 1024
POD_EPOCHS = 90


def get_config(ice: bool, argument: str | None) -> ml_collections.ConfigDict:
  config = base.get_config()
  if ice:
    config = base.with_ice(config)
  config.dataset = "imagenet"
  config.num_classes = 1000
  config.dataset_options = ml_collections.ConfigDict(
      {"image_size": 224, "shuffle_buffer": 10_000, "data_dir": "", "manual_dir": ""})

  model = config.model
  del model.steps_per_level  # an int in base.py: one count for every level
  for name, value in models.FI_REVNET48_LAYOUT.items():
    setattr(model, name, value)
  model.compute_dtype = "bfloat16"
  model.backprop = "reversible"

  steps_per_epoch = TRAIN_EXAMPLES // POD_BATCH_SIZE
  config.batch_size = POD_BATCH_SIZE
  config.eval_batch_size = 1024
  config.total_steps = POD_EPOCHS * steps_per_epoch
  config.eval_examples = 0  # all 50,000 validation images
  config.train_eval_examples = 10_000
  config.log_every_steps = 100
  config.eval_every_steps = 5 * steps_per_epoch
  config.checkpoint_every_steps = steps_per_epoch

  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_epochs = 5
  config.optimizer.decay_epochs = (30, 60, 80)
  config.optimizer.decay_factor = 0.1
  config.optimizer.clip_norm = 100.0

  if argument == "tiny":
    return make_tiny(config)
  if argument not in (None, ""):
    raise ValueError(f"Unknown config variant {argument!r}: use nothing (the pod setting) or ':tiny'.")
  return config


def make_tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """fiRevNet48's layout at 5 steps, width 16 and 32x32 images, for 24 steps (CI)."""
  config.dataset_options.image_size = 32
  config.dataset_options.shuffle_buffer = 1_000
  config.model.steps_per_level = (1, 1, 1, 1, 1)
  config.model.width = 16
  config.model.compute_dtype = ""  # float32: the metamer check compares logits to 1e-3
  config.batch_size = 16
  config.eval_batch_size = 16
  config.total_steps = 24
  config.eval_examples = 0
  config.train_eval_examples = 0
  config.log_every_steps = 4
  config.eval_every_steps = 24
  config.checkpoint_every_steps = 8
  config.nuisance_classifier.hidden = (64,)
  config.nuisance_classifier.steps_per_batch = 2
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_epochs = 1
  config.optimizer.decay_epochs = ()
  return config
