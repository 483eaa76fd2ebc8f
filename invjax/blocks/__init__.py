"""Invertible blocks: each maps `x -> (y, logdet)` and back with `inverse`."""

from invjax.blocks.actnorm import ActNorm
from invjax.blocks.bijection import Bijection
from invjax.blocks.chain import Chain
from invjax.blocks.conv import Conv2D, conv2d_same
from invjax.blocks.coupling import AdditiveCoupling, AffineCoupling, Coupling, CouplingNetwork
from invjax.blocks.dct import DCT2D, dct_matrix
from invjax.blocks.flow_steps import FlowStep, FlowSteps
from invjax.blocks.permutations import InvertibleConv1x1, ReversePermutation, ShufflePermutation
from invjax.blocks.reshaping import Squeeze, merge_channels, split_channels
from invjax.blocks.split_prior import SplitPrior, ZeroConv

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "Bijection",
    "Chain",
    "Conv2D",
    "Coupling",
    "CouplingNetwork",
    "DCT2D",
    "FlowStep",
    "FlowSteps",
    "InvertibleConv1x1",
    "ReversePermutation",
    "ShufflePermutation",
    "SplitPrior",
    "Squeeze",
    "ZeroConv",
    "conv2d_same",
    "dct_matrix",
    "merge_channels",
    "split_channels",
]
