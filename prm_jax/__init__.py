"""prm-jax: reinforcement learning for code LLMs with process supervision, in JAX."""

__version__ = "0.1.0"
