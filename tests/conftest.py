"""Test configuration: float64 JAX everywhere (SPEC: derived Jacobians are checked in float64)."""
import jax

jax.config.update("jax_enable_x64", True)
