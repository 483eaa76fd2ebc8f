"""Every config field is checked before any work (issue 17): each class of bad value, for
each field it applies to, gets a ValueError naming the field and what is allowed."""

import importlib
import math
import re

import ml_collections
import pytest

from invjax import train
from test_train import micro_config


def with_value(name: str, value, config=None) -> ml_collections.ConfigDict:
  """The micro config with `name` set to `value`, whatever its type (as a config file could)."""
  tree = (config or micro_config()).to_dict()
  *path, leaf = name.split(".")
  target = tree
  for part in path:
    target = target[part]
  target[leaf] = value
  return ml_collections.ConfigDict(tree, type_safe=False)


COUNTS_FROM_1 = ("batch_size", "eval_batch_size", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                 "keep_checkpoints", "model.num_levels", "model.width", "nuisance_classifier.steps_per_batch",
                 "nuisance_classifier.replay_batches")
COUNTS_FROM_0 = ("total_steps", "eval_examples", "train_eval_examples", "seed",
                 "nuisance_classifier.reset_every_steps")
POSITIVE_RATES = ("optimizer.learning_rate", "nuisance_classifier.learning_rate", "optimizer.decay_factor")
WEIGHTS = ("loss.ce_weight", "loss.nuisance_weight", "loss.mle_weight", "loss.logit_penalty_weight",
           "loss.label_dependence_weight", "optimizer.clip_norm")
PROBABILITIES = ("model.dropout", "nuisance_classifier.dropout")
CHOICES = ("dataset", "model.kind", "loss.nuisance_form", "model.compute_dtype", "model.backprop")

BAD_VALUES = (
    [(name, value) for name in COUNTS_FROM_1 for value in (0, -8, 2.5, "8", True)]
    + [(name, value) for name in COUNTS_FROM_0 for value in (-1, 1.5, "0", None)]
    + [(name, value) for name in POSITIVE_RATES for value in (0.0, -1e-3, math.nan, math.inf, "1e-3")]
    + [(name, value) for name in WEIGHTS for value in (-1.0, math.nan, -math.inf, "1")]
    + [(name, value) for name in PROBABILITIES for value in (-0.1, 1.0, 1.5, math.nan)]
    + [(name, value) for name in CHOICES for value in ("typo", None)]
    + [("model.steps_per_level", value) for value in (0, (), (1, 0), "2")]
    + [("nuisance_classifier.hidden", value) for value in ((), (32, 0), 32)]
    + [("eval_splits", value) for value in (("validation",), "test")]
    + [("optimizer.decay_epochs", value) for value in ((-1,), (math.nan,), 60)]
    + [("dequantize", value) for value in ("yes", 1)]
    + [("num_classes", value) for value in (0, 1, 11)]
    + [("profile_steps", value) for value in ("10", "20,10", "0,5", "a,b", (1.5, 2), 10, "1,2,3")]
)


@pytest.mark.parametrize("name,value", BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_each_class_of_bad_value_is_rejected_naming_the_field(name, value):
  with pytest.raises(ValueError, match=re.escape(f"config.{name}")) as error:
    train.validate(with_value(name, value), num_devices=8)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["mnist_ce", "mnist_ice", "mnist_authors", "mnist_cnn", "shift_mnist_ce",
                                  "shift_mnist_ice", "shift_mnist_authors", "shift_mnist_cnn", "imagenet_ce",
                                  "imagenet_ice", "mnist_demo"])
@pytest.mark.parametrize("variant", [None, "tiny"])
def test_the_shipped_configs_pass(name, variant):
  config = importlib.import_module(f"configs.{name}").get_config(variant)
  for run_config in ([config.flow, config.judge] if name == "mnist_demo" else [config]):
    train.validate(run_config, num_devices=1)


def test_a_typo_in_a_config_files_model_section_is_named():
  config = micro_config()
  config.model.unlock()
  config.model.widht = 4
  with pytest.raises(ValueError, match="config.model.widht is not a fi_revnet field"):
    train.validate(config, num_devices=8)


def test_a_missing_field_is_named():
  config = micro_config().to_dict()
  del config["optimizer"]["clip_norm"]
  with pytest.raises(ValueError, match="config.optimizer.clip_norm is missing"):
    train.validate(ml_collections.ConfigDict(config), num_devices=8)
