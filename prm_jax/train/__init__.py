"""Shared training machinery: sharded jitted steps, losses, optimizers."""
