"""MNIST, fi-RevNet, independence cross-entropy."""

from configs import base


def get_config(argument=None):
  return base.apply_variant(base.with_ice(base.get_config()), argument)
