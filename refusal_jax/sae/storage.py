"""Writing a trained SAE in a narrower dtype when that costs nothing measured.

`store_sae` writes the SAE in `dtype` (weights and biases; JumpReLU
thresholds stay float32), reads it back with `load_sae`, measures it again
on held-out activations and keeps it only when FVE drops by at most
`tolerance.fve` and mean L0 moves by at most `tolerance.l0_relative` of
itself; otherwise the float32 SAE is written. Both measurements are
returned, so a summary can show what the storage cost.

Axis letters: see refusal_jax/axes.py (N tokens, D d_model).
"""

import os
from typing import Any

from absl import logging
import jax.numpy as jnp
import numpy as np

from refusal_jax.sae import evaluate
from refusal_jax.sae import loaders
from refusal_jax.sae.model import SAE


def cast_sae(sae: SAE, dtype: str) -> SAE:
  """The SAE with weights and biases in `dtype` (thresholds stay float32)."""
  return sae.replace(W_enc=sae.W_enc.astype(dtype),
                     b_enc=sae.b_enc.astype(dtype),
                     W_dec=sae.W_dec.astype(dtype),
                     b_dec=sae.b_dec.astype(dtype), dtype=jnp.dtype(dtype).name)


def store_sae(sae: SAE, eval_acts: np.ndarray, out: str, dtype: str,
              tolerance) -> tuple[str, dict[str, Any]]:
  """Writes `sae` to folder `out` in `dtype` if that is within `tolerance`.

  Args:
    sae: the trained float32 SAE.
    eval_acts: [N, D] held-out activations at the SAE's site.
    out: the SAELens folder to write (replaced).
    dtype: 'float32', 'bfloat16' or 'float16'.
    tolerance: has `fve` (largest FVE loss) and `l0_relative` (largest
      relative change of mean L0).

  Returns:
    (the dtype written, {'float32': metrics, dtype: metrics as stored,
    'stored_dtype', 'stored_mb'}).
  """
  f32 = evaluate.evaluate_sae(sae, eval_acts)
  record = {'float32': f32}
  if dtype != 'float32':
    loaders.save_sae(cast_sae(sae, dtype), out, overwrite=True)
    low = evaluate.evaluate_sae(loaders.load_sae(out), eval_acts)
    record[dtype] = low
    ok = (f32['fve'] - low['fve'] <= tolerance.fve
          and abs(low['l0'] - f32['l0']) <= tolerance.l0_relative * f32['l0'])
    if not ok:
      logging.warning('%s costs %.2e FVE / %.3f L0: storing float32', dtype,
                      f32['fve'] - low['fve'], low['l0'] - f32['l0'])
      dtype = 'float32'
  if dtype == 'float32':
    loaders.save_sae(sae, out, overwrite=True)
  record['stored_dtype'] = dtype
  record['stored_mb'] = sum(
      os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)) / 2**20
  return dtype, record
