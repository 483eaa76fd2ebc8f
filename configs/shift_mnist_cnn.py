"""shiftMNIST (`--config.variant=binary|textured`), plain CNN, cross-entropy."""

from configs import mnist_cnn, shift_mnist


def get_config(argument=None):
  return shift_mnist.adapt(mnist_cnn.get_config(argument))
