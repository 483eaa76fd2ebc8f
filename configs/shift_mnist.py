"""shiftMNIST (SPEC 7): shared by the shift_mnist_* configs. `config.variant` is
"binary" or "textured"; evaluation covers the clean and the shifted test sets."""

from configs import base


def adapt(config):
  config.variant = "binary"
  config.dataset = "shift_mnist/" + config.get_ref("variant")
  config.eval_splits = ("test", "test_shifted")
  return config
