"""shiftMNIST (`--config.variant=binary|textured`), fi-RevNet, independence cross-entropy."""

from configs import mnist_ice, shift_mnist


def get_config(argument=None):
  return shift_mnist.adapt(mnist_ice.get_config(argument))
