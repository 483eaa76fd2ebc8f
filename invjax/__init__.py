"""invjax: fully invertible networks, metameric sampling and the independence
cross-entropy (Jacobsen et al., *Excessive Invariance Causes Adversarial
Vulnerability*, ICLR 2019) in JAX and Flax.

Subpackages: `blocks` (invertible layers), `models` (fi-RevNet, CNN), `data`,
`losses`, `train`, `metamers`, `analysis`, `parallel`, `plotting`.
"""

__version__ = "0.1.0"
