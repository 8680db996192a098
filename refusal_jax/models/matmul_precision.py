"""The matmul precision policy: full float32 matmuls for float32 runs.

JAX's default precision of a float32 matmul is the backend's fastest: TF32
on NVIDIA GPUs from Ampere on (10 mantissa bits), bfloat16 passes on TPUs.
A float32 forward of the Gemma-2 organism then differs from transformers by
4.5e-3 at logit scale 14 on an H200, against 4.8e-6 with 'highest'. On CPU
every float32 matmul is full precision whatever the setting.

Policies (the pipeline's `config.matmul_precision`, `Model.matmul_precision`,
the benchmark's `config.matmul_precision`):

* 'auto' (the default): 'highest' for float32 parameters and the backend's
  default for bfloat16 ones (their matmuls are bf16 already; the float32
  ones beside them, such as the SAE encoder, stay fast). An enclosing
  `jax.default_matmul_precision(...)` scope, or JAX_DEFAULT_MATMUL_PRECISION,
  is kept as it is: 'auto' only fills in where nothing was chosen.
* 'default', 'high', 'highest': that precision (`jax.lax.Precision`) for
  every matmul whose operands do not name their own, whatever the dtype.

`scope(policy, dtype)` is a context manager put around the calls of jitted
computations (`Model.forward` and `Model.generate`, the sweep engine, the
pipeline's stages). JAX reads the precision when it traces a function, and
the precision is part of the jit cache key, so a function traced under one
precision is never reused under another. Nothing is set globally.
"""

import contextlib

import jax
import jax.numpy as jnp

from refusal_jax import errors

POLICIES = ('auto', 'default', 'high', 'highest')


def check(policy: str) -> str:
  """`policy` if it is one of POLICIES; errors.ConfigError else."""
  if policy not in POLICIES:
    raise errors.ConfigError(
        f'matmul_precision {policy!r}: expected one of {POLICIES}')
  return policy


def params_dtype(params) -> jnp.dtype | None:
  """The dtype of the first floating-point leaf of `params` (None: none)."""
  for leaf in jax.tree.leaves(params):
    dtype = getattr(leaf, 'dtype', None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
      return jnp.dtype(dtype)
  return None


def enclosing() -> str | None:
  """The precision an enclosing scope (or the environment) chose, or None."""
  return jax.config.jax_default_matmul_precision


def resolve(policy: str, dtype) -> str | None:
  """The precision `policy` asks for with parameters of `dtype`.

  Args:
    policy: one of POLICIES.
    dtype: the parameter dtype (anything jnp.dtype accepts), or None.

  Returns:
    'default', 'high' or 'highest'; None where 'auto' leaves the choice to
    an enclosing scope or the backend.
  """
  check(policy)
  if policy != 'auto':
    return policy
  if enclosing() is not None:
    return None
  if dtype is not None and jnp.dtype(dtype) == jnp.float32:
    return 'highest'
  return None


def scope(policy: str, dtype) -> contextlib.AbstractContextManager:
  """A context in which matmuls traced follow `policy` for `dtype` params."""
  precision = resolve(policy, dtype)
  if precision is None:
    return contextlib.nullcontext()
  return jax.default_matmul_precision(precision)


def effective(policy: str, dtype) -> str:
  """The precision matmuls get under `scope(policy, dtype)`, for records:
  'default', 'high', 'highest', or 'backend default'."""
  return resolve(policy, dtype) or enclosing() or 'backend default'
