"""Meshes, logical axis rules and multi-host setup (JAX's own SPMD runtime)."""
