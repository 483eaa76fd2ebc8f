"""shiftMNIST (`--config.variant=binary|textured`), fi-RevNet, the authors' iCE recipe (configs/mnist_authors.py)."""

from configs import mnist_authors, shift_mnist


def get_config(argument=None):
  return shift_mnist.adapt(mnist_authors.get_config(argument))
