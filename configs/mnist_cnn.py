"""MNIST, plain CNN, cross-entropy: the non-invertible baseline and the metamer oracle."""

import ml_collections

from configs import base


def get_config(argument=None):
  config = base.get_config()
  config.model = ml_collections.ConfigDict({"kind": "cnn", "dropout": 0.3})
  config.total_steps = 20 * (base.MNIST_TRAIN_EXAMPLES // config.batch_size)
  config.optimizer.decay_epochs = (10, 15)
  return base.apply_variant(config, argument)
