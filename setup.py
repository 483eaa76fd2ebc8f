"""invjax: fully invertible networks, metamers and the iCE objective in JAX/Flax."""

import setuptools

setuptools.setup(
    name="invjax",
    version="0.1.0",
    description=(
        "Fully invertible RevNets, metameric sampling and the independence "
        "cross-entropy (Jacobsen et al., ICLR 2019) in JAX/Flax."
    ),
    packages=setuptools.find_packages(include=["invjax", "invjax.*"]),
    python_requires=">=3.11",
    install_requires=[
        "absl-py",
        "flax>=0.10",
        "jax>=0.7",
        "ml_collections",
        "numpy",
        "optax",
        "orbax-checkpoint",
        "tensorflow-cpu",
        "tensorflow-datasets",
        # TFDS 4.9.10 imports it on every Python but declares it only for < 3.9.
        "importlib_resources",
        # tf.summary writes TensorBoard event files only with this package present.
        "tensorboard",
        # PNG grids and decision-boundary plots: one well-kept library instead of
        # hand-written image encoders.
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
)
