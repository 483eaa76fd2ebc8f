"""MNIST, fi-RevNet, plain cross-entropy."""

from configs import base


def get_config(argument=None):
  return base.apply_variant(base.get_config(), argument)
