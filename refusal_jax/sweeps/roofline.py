"""Roofline of an SAE ablation sweep: the work one evaluation needs, and a peak.

`sweep_flops` counts the floating-point operations (multiply and add count as
two) that one evaluation of `engine.sae_sweep` -- one prompt under one latent
mask -- cannot avoid once the residual at the SAE's site is cached. Dividing
evaluations/s times `sweep_flops` by `measure_matmul_peak` gives the fraction
of the device's dense-matmul peak that a sweep achieves on useful work.

What is counted, for a prompt of T tokens and a model of width D, N query
heads and K key/value heads of dimension H, MLP width F, with the edit at the
residual entering layer `site_layer_resume` = s (resid_post[l] is
resid_pre[l + 1]) and L layers:

* SAE edit: 2*T*C*D, the change of the C candidate latents through their
  [C, D] decoder slice (the encoding is shared by every mask of a prompt and
  is not counted).
* With SAEs at several sites (`engine.feature_sweep`), s is the first one's
  and C counts the candidates of all; the inputs of the later SAEs depend on
  the mask, so their C_e candidate latents are encoded in every evaluation,
  2*T*D*C_e (`encoded_candidates`).
* Layers s .. L-2, at all T positions: the q/k/v/o projections
  2*T*D*(2*N*H + 2*K*H), the gated MLP 2*T*3*D*F, and attention scores and
  values over the causal triangle, 2 * 2*N*H * T*(T+1)/2 (the sliding window
  is ignored: it only removes work when T exceeds it).
* Layer L-1 (the last), when s < L: the metric reads the last position only,
  so the k/v projections run at all T positions (2*T*D*2*K*H) but the q and o
  projections, one query's attention over T keys (2*2*N*H*T) and the MLP
  (2*3*D*F) at one position.
* Logits: 2*D*V_m at the last position, where V_m = `metric_vocab` is the
  number of vocabulary columns the metric reads (V for a softmax-based metric).

Not counted: norms, RoPE, activations, softcaps, softmax, the metric, the
prefix (embedding and layers before s, shared by all masks of a prompt) --
all either shared or O(T*D) elementwise work.

`hooked_forward_flops` counts, with the same rules, what the conventional
hook-based evaluation does per prompt and mask: every layer at every position,
the full SAE encode and two full decodes at the site, and logits at every
position.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.models.config import ModelConfig


def layer_flops(config: ModelConfig, n_tokens: int) -> float:
  """FLOPs of one decoder layer over all T positions (causal attention)."""
  d, n, k, h, f = (config.d_model, config.num_heads, config.num_kv_heads,
                   config.head_dim, config.mlp_dim)
  t = n_tokens
  proj = 2 * t * d * (2 * n * h + 2 * k * h)
  attn = 2 * 2 * n * h * t * (t + 1) / 2
  mlp = 2 * t * 3 * d * f
  return float(proj + attn + mlp)


def last_layer_flops(config: ModelConfig, n_tokens: int) -> float:
  """FLOPs of the last layer when only its last position is read."""
  d, n, k, h, f = (config.d_model, config.num_heads, config.num_kv_heads,
                   config.head_dim, config.mlp_dim)
  t = n_tokens
  kv = 2 * t * d * 2 * k * h
  qo = 2 * d * 2 * n * h
  attn = 2 * 2 * n * h * t
  mlp = 2 * 3 * d * f
  return float(kv + qo + attn + mlp)


def sweep_flops(config: ModelConfig, *, n_tokens: int, site_layer_resume: int,
                d_sae_candidates: int, metric_vocab: int,
                encoded_candidates: int = 0) -> float:
  """FLOPs one evaluation (one prompt under one mask) minimally needs.

  See the module docstring for exactly what is counted.

  Args:
    config: the model architecture.
    n_tokens: T, tokens of the (padded) prompt.
    site_layer_resume: the first layer run per mask (`engine.sae_resume_layer`
      of the SAE); equal to `config.num_layers` when the SAE reads the last
      layer's resid_post.
    d_sae_candidates: C, candidate latents the masks refer to.
    metric_vocab: vocabulary columns the metric reads at the last position.
    encoded_candidates: C_e, candidates of SAEs after the first (encoded per
      evaluation).

  Returns:
    FLOPs per evaluation.

  Raises:
    errors.ConfigError: on a resume layer outside [0, num_layers] or
      non-positive sizes.
  """
  n_layers = config.num_layers
  if not 0 <= site_layer_resume <= n_layers:
    raise errors.ConfigError(
        f'site_layer_resume {site_layer_resume} is outside [0, {n_layers}]')
  if min(n_tokens, d_sae_candidates, metric_vocab) <= 0:
    raise errors.ConfigError(
        'n_tokens, d_sae_candidates and metric_vocab must be positive')
  total = 2.0 * n_tokens * (d_sae_candidates + encoded_candidates) * (
      config.d_model)
  full_layers = max(n_layers - 1 - site_layer_resume, 0)
  total += full_layers * layer_flops(config, n_tokens)
  if site_layer_resume < n_layers:
    total += last_layer_flops(config, n_tokens)
  total += 2.0 * config.d_model * metric_vocab
  return total


def hooked_forward_flops(config: ModelConfig, *, n_tokens: int,
                         d_sae: int) -> float:
  """FLOPs of one full forward pass with an SAE edited in a hook, per prompt.

  Args:
    config: the model architecture.
    n_tokens: T, tokens of the (padded) prompt.
    d_sae: A, SAE width (with one hook per SAE, the sum of their widths).

  Returns:
    L full layers + 2*T*D*A (encode) + 2 * 2*T*A*D (decode of the edited and
    of the clean latents) + 2*T*D*V (logits at every position).
  """
  t, d = n_tokens, config.d_model
  return (config.num_layers * layer_flops(config, t) + 3 * 2.0 * t * d * d_sae
          + 2.0 * t * d * config.vocab_size)


def measure_matmul_peak(dtype=jnp.float32, size: int = 2048,
                        repeats: int = 10) -> float:
  """GFLOP/s of a jitted [size, size] x [size, size] matmul on the default device.

  The matmul is compiled and run once before timing; each of `repeats` runs is
  timed to completion (`block_until_ready`) and the best is reported.

  Args:
    dtype: operand dtype (the product accumulates in this dtype).
    size: matrix side S; one matmul is 2*S^3 FLOPs.
    repeats: timed runs.

  Returns:
    The best observed GFLOP/s.

  Raises:
    errors.ConfigError: on a non-positive size or repeat count.
  """
  if size <= 0 or repeats <= 0:
    raise errors.ConfigError('size and repeats must be positive')
  keys = jax.random.split(jax.random.key(0))
  a = jax.random.normal(keys[0], (size, size), jnp.float32).astype(dtype)
  b = jax.random.normal(keys[1], (size, size), jnp.float32).astype(dtype)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  best = np.inf
  for _ in range(repeats):
    began = time.perf_counter()
    matmul(a, b).block_until_ready()
    best = min(best, time.perf_counter() - began)
  return 2.0 * size ** 3 / best / 1e9
