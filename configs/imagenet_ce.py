"""ImageNet, fiRevNet48, plain cross-entropy (the paper's Figure 1 model); see configs/imagenet.py."""

from configs import imagenet


def get_config(argument=None):
  return imagenet.get_config(ice=False, argument=argument)
