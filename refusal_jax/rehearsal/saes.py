"""Random SAEs written in the Gemma Scope and Llama Scope layouts.

The files are the ones `refusal_jax.load_sae` reads from the real releases
(paper.md section 5): Gemma Scope's `params.npz` (W_enc [D, A], W_dec [A, D],
b_enc [A], b_dec [D], threshold [A]) under
`layer_{L}/width_{W}/average_l0_{N}/`, and Llama Scope's `hyperparams.json`
with `checkpoints/final.safetensors` (torch layout: encoder.weight [A, D],
decoder.weight [D, A]). Encoder rows are random unit directions; thresholds
are set from the model's mean residual norm at the SAE's site so that about
`target_l0` latents fire per token, as a trained SAE's would.
"""

import json
import math
import os
import statistics

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

# Llama Scope's residual SAEs normalise inputs to norm sqrt(D).
LLAMA_SCOPE_HYPERPARAMS = {
    'act_fn': 'jumprelu', 'norm_activation': 'dataset-wise',
    'use_decoder_bias': True, 'apply_decoder_bias_to_pre_encoder': False,
    'sparsity_include_decoder_norm': True, 'top_k': 50,
    'dtype': 'torch.bfloat16',
}


def _unit_rows(rng, n: int, d: int) -> np.ndarray:
  w = rng.standard_normal((n, d), dtype=np.float32)
  return w / np.linalg.norm(w, axis=1, keepdims=True)


def _z(d_sae: int, target_l0: float) -> float:
  """Standard-normal quantile that `target_l0` of `d_sae` latents exceed."""
  return statistics.NormalDist().inv_cdf(1 - target_l0 / d_sae)


def write_gemma_scope(root: str, *, release: str, layer: int, d_in: int,
                      d_sae: int, resid_norm: float, target_l0: int = 78,
                      seed: int = 0) -> str:
  """Writes a Gemma Scope residual SAE folder; returns its path.

  Args:
    root: where the release folder goes.
    release: e.g. 'gemma-scope-2b-pt-res'.
    layer: L of `layer_{L}` (the SAE reads resid_post of layer L).
    d_in: D, the model's width.
    d_sae: A, latents (16384 for the 16k width).
    resid_norm: mean norm of the model's residual at that site.
    target_l0: expected active latents per token (also the folder's N).
    seed: RNG seed.
  """
  rng = np.random.default_rng(seed)
  width = f'{d_sae // 1024}k' if d_sae % 1024 == 0 else str(d_sae)
  folder = os.path.join(root, release, f'layer_{layer}', f'width_{width}',
                        f'average_l0_{target_l0}')
  os.makedirs(folder, exist_ok=True)
  w_dec = _unit_rows(rng, d_sae, d_in)  # [A, D]
  # pre-activations x @ W_enc with |x| = resid_norm are ~N(0, resid_norm^2/D)
  threshold = _z(d_sae, target_l0) * resid_norm / math.sqrt(d_in)
  np.savez(os.path.join(folder, 'params.npz'),
           W_enc=np.ascontiguousarray(w_dec.T), W_dec=w_dec,
           b_enc=np.zeros(d_sae, np.float32),
           b_dec=np.zeros(d_in, np.float32),
           threshold=np.full(d_sae, threshold, np.float32))
  return folder


def write_llama_scope(root: str, *, name: str, layer: int, d_in: int,
                      d_sae: int, resid_norm: float, target_l0: int = 50,
                      seed: int = 0) -> str:
  """Writes a Llama Scope residual SAE folder; returns its path.

  Args:
    root: where the release folder goes.
    name: e.g. 'Llama3_1-8B-Base-LXR-8x'; the SAE folder inside is
      `Llama3_1-8B-Base-L{layer}R-8x`.
    layer: the SAE reads resid_post of this layer.
    d_in: D, the model's width.
    d_sae: A, latents (32768 for 8x).
    resid_norm: mean norm of the model's residual at that site (the
      `dataset_average_activation_norm` the SAE normalises by).
    target_l0: expected active latents per token.
    seed: RNG seed.
  """
  rng = np.random.default_rng(seed)
  prefix = name.split('-LXR-')[0]
  folder = os.path.join(root, name, f'{prefix}-L{layer}R-8x')
  os.makedirs(os.path.join(folder, 'checkpoints'), exist_ok=True)
  dec = _unit_rows(rng, d_sae, d_in)  # [A, D]
  # normalised inputs have norm sqrt(D), so x_n @ e for a unit e is ~N(0, 1)
  hp = dict(LLAMA_SCOPE_HYPERPARAMS, d_model=d_in, d_sae=d_sae,
            expansion_factor=d_sae // d_in,
            hook_point_in=f'blocks.{layer}.hook_resid_post',
            hook_point_out=f'blocks.{layer}.hook_resid_post',
            jump_relu_threshold=_z(d_sae, target_l0),
            dataset_average_activation_norm={'in': resid_norm,
                                             'out': resid_norm})
  with open(os.path.join(folder, 'hyperparams.json'), 'w') as f:
    json.dump(hp, f, indent=2)
  bf16 = lambda a: np.ascontiguousarray(a).astype(ml_dtypes.bfloat16)
  save_file({
      'encoder.weight': bf16(dec), 'encoder.bias': bf16(np.zeros(d_sae)),
      'decoder.weight': bf16(dec.T), 'decoder.bias': bf16(np.zeros(d_in)),
  }, os.path.join(folder, 'checkpoints', 'final.safetensors'))
  return folder
