"""shiftMNIST (`--config.variant=binary|textured`), fi-RevNet, plain cross-entropy."""

from configs import mnist_ce, shift_mnist


def get_config(argument=None):
  return shift_mnist.adapt(mnist_ce.get_config(argument))
