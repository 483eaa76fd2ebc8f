"""`make demo`: a small CE fi-RevNet, an independent small CNN and the metamers that tell them apart.

Three parts (`python -m experiments.demo`):

* `flow`: a training config (configs/base.py) for a fi-RevNet trained with
  plain cross-entropy, small enough to reach under 3% MNIST test error
  (1.96%) in a minute or two on a 2-core CPU: fewer, narrower flow steps than
  the paper's, most of them in the cheap last level (4x4 positions), about one
  epoch at a high learning rate (warmed up, then decayed for the last 100
  steps). The nuisance classifier that every fi-RevNet run trains beside the
  flow is shrunk to one small layer taking one step per batch: CE ignores it,
  and the demo never asks it anything.
* `judge`: a training config for a small CNN (`invjax.models.CNN`) trained on
  the same images. It stands in for a human observer: it never sees z_n, so
  when it puts a metamer F^-1(z_s(a), z_n(b)) in b's class, the metamer looks
  like b although the flow reads a.
* `metamers`: how many random test pairs of different classes the agreement
  averages over, how many the figure shows, and the pairing's seed.

`:tiny` shrinks every part to a few steps on a small model, for tests.
`:authors` trains the flow with the authors' iCE recipe instead of CE
(`configs/mnist_authors.py:cpu`: the small model for 3 epochs, about 11 minutes
on a quiet 2-core CPU), the objective whose metamers most follow the logit
source at that budget (docs/results.md, "Objectives at equal budget"):

    python -m experiments.demo --config=configs/mnist_demo.py:authors --workdir=runs/demo_authors
"""

import ml_collections

from configs import base, mnist_authors


def _flow() -> ml_collections.ConfigDict:
  config = base.get_config()
  with config.ignore_type():
    config.model.steps_per_level = (2, 2, 6)
  config.model.width = 32
  config.model.dropout = 0.0
  config.batch_size = 128
  config.total_steps = 500  # 1.07 epochs
  config.optimizer.learning_rate = 5e-3
  config.optimizer.warmup_epochs = 0.1
  config.optimizer.decay_epochs = (0.85,)  # x0.2 for the last 100 steps
  config.nuisance_classifier.hidden = (16,)
  config.nuisance_classifier.steps_per_batch = 1
  config.eval_examples = 0  # the whole test set: the error the demo prints
  config.train_eval_examples = 1_000
  config.log_every_steps = 50
  config.eval_every_steps = config.total_steps
  config.checkpoint_every_steps = 100
  return config


def _judge() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.model = ml_collections.ConfigDict(
      {"kind": "cnn", "channels": (16, 32), "hidden": 128, "dropout": 0.0})
  config.batch_size = 128
  config.total_steps = 300
  config.optimizer.learning_rate = 3e-3
  config.optimizer.decay_epochs = ()
  config.dequantize = False
  config.eval_examples = 0
  config.train_eval_examples = 1_000
  config.log_every_steps = 50
  config.eval_every_steps = config.total_steps
  config.checkpoint_every_steps = 100
  return config


def _tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A few steps of a smaller flow and CNN, on part of the test set: the pipeline, not the result."""
  with config.flow.ignore_type():
    config.flow.model.steps_per_level = 1
  config.flow.model.width = 8
  for part in (config.flow, config.judge):
    part.batch_size = 32
    part.total_steps = 4
    part.eval_batch_size = 200  # a multiple of the 8 devices the tests simulate
    part.eval_examples = 200
    part.train_eval_examples = 100
    part.log_every_steps = part.eval_every_steps = part.checkpoint_every_steps = 2
  config.judge.model.channels = (4, 8)
  config.judge.model.hidden = 16
  config.metamers.num_pairs = 20
  config.metamers.figure_pairs = 6
  return config


def get_config(argument=None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.objective = "CE"  # how the flow is trained, as the demo's messages and figure name it
  config.flow = _flow()
  config.judge = _judge()
  config.metamers = ml_collections.ConfigDict({"num_pairs": 1_000, "figure_pairs": 9, "seed": 0})
  if argument == "tiny":
    return _tiny(config)
  if argument == "authors":
    config.objective = "the authors' iCE"
    config.flow = mnist_authors.get_config("cpu")
    return config
  if argument not in (None, ""):
    raise ValueError(f"Unknown config variant {argument!r}: use nothing, ':tiny' or ':authors'.")
  return config
