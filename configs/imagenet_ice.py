"""ImageNet, fiRevNet48, independence cross-entropy (base.with_ice); see configs/imagenet.py."""

from configs import imagenet


def get_config(argument=None):
  return imagenet.get_config(ice=True, argument=argument)
