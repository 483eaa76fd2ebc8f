"""shiftMNIST (SPEC 7): shared by the shift_mnist_* configs. `config.variant` is
"binary" or "textured"; evaluation covers the clean test set (the training
distribution), the shifted one and the one without the feature."""

from invjax.data import shift_mnist


def adapt(config):
  config.variant = "binary"
  config.dataset = "shift_mnist/" + config.get_ref("variant")
  # Textured only: texture contrast, size before the 32x32 crop, and where test crops come from.
  config.dataset_options.update(shift_mnist.TEXTURE_DEFAULTS)
  config.eval_splits = ("test", "test_shifted", "test_none")
  return config
