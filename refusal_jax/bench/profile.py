"""Where one chunk of the sweep engine spends its time, stage by stage.

`profile_engine` rebuilds one chunk of `engine.sae_sweep` out of its stages,
jits each on its own and times it warm, with the stage's FLOPs counted as in
`sweeps/roofline.py`.

Axis letters: see refusal_jax/axes.py (M masks, P prompts, C candidates).
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from refusal_jax.bench import timing
from refusal_jax.bench.setup import Setup
from refusal_jax.interventions import sae_edit
from refusal_jax.models import transformer
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import roofline


def profile_engine(setup: Setup, config) -> dict[str, Any]:
  """Warm seconds of each stage of one engine chunk, timed separately.

  Stages, for Mc masks x Pc prompts: 'prefix' (layers before the site and the
  SAE encoding, once per prompt chunk), 'sae_edit' (the candidate-slice edit),
  'layers' (the layers after the site but the last, every position),
  'last_layer' (the last layer, at the last position when trimmed) and
  'logits' (final norm, unembedding and metric at the last position). Each
  stage has its seconds per chunk, its FLOPs counted as in `roofline` and
  their GFLOP/s.
  """
  cfg, params = setup.model.config, setup.model.params
  sae, metric = setup.sae, setup.metric
  mc = min(config.sweep.chunk_masks, setup.masks.shape[0])
  pc = min(config.sweep.chunk_prompts, setup.input_ids.shape[0])
  ids = jnp.asarray(setup.input_ids[:pc])
  mask = jnp.asarray(setup.attention_mask[:pc])
  masks = jnp.asarray(setup.masks[:mc])
  cands = jnp.asarray(setup.candidates)
  start = engine.sae_resume_layer(sae)
  n_layers, t, d = cfg.num_layers, ids.shape[1], cfg.d_model
  trim = config.sweep.trim_last_layer and start < n_layers
  stop = n_layers - 1 if trim else n_layers

  # Parameters are arguments, never closed over: a closure would compile
  # them into the executable as constants.
  @jax.jit
  def prefix(params, sae, ids, mask, cands):
    resid = engine.prefix_residual(params, cfg, ids, mask, start)
    return resid, sae.encode(resid)[..., cands], sae.W_dec[cands].astype(
        jnp.float32)

  @jax.jit
  def edit(resid, mask, f, w, masks):
    keep = mask.astype(bool)[..., None]
    edited = sae_edit.edit_latents(f, masks[:, None, None], config.sweep.value,
                                   config.sweep.mode)
    delta = jnp.einsum('MPTC,CD->MPTD', edited - f, w)
    return (resid.astype(jnp.float32) + jnp.where(keep, delta, 0.0)).astype(
        resid.dtype)

  @jax.jit
  def middle(params, x, mask):
    return jax.vmap(lambda r: transformer.forward(
        params, cfg, attention_mask=mask, start_layer=start, stop_layer=stop,
        resid=r).resid)(x)

  @jax.jit
  def last(params, x, mask):
    return jax.vmap(lambda r: engine.last_hidden(
        params, cfg, r, mask, start_layer=stop,
        trim_last_layer=trim))(x)

  @functools.partial(jax.jit, static_argnames='metric')
  def logits(params, h, metric):
    return metric(engine.final_logits(params, cfg, h))

  def warm(fn, *args, **kwargs):
    jax.block_until_ready(fn(*args, **kwargs))
    return timing.timed(
        lambda: jax.block_until_ready(fn(*args, **kwargs)), 2)

  c = setup.candidates.shape[0]
  stages = {}
  t_prefix, (resid, f, w) = warm(prefix, params, sae, ids, mask, cands)
  stages['prefix'] = (t_prefix, pc * (
      start * roofline.layer_flops(cfg, t) + 2.0 * t * d * sae.d_sae))
  t_edit, x = warm(edit, resid, mask, f, w, masks)
  stages['sae_edit'] = (t_edit, mc * pc * 2.0 * t * c * d)
  if start < stop:
    t_mid, x = warm(middle, params, x, mask)
    stages['layers'] = (t_mid, mc * pc * (stop - start) *
                        roofline.layer_flops(cfg, t))
  if stop < n_layers:
    t_last, h = warm(last, params, x, mask)
    stages['last_layer'] = (t_last, mc * pc * (
        roofline.last_layer_flops(cfg, t) if trim
        else roofline.layer_flops(cfg, t)))
  else:
    h = jnp.take_along_axis(
        x, transformer.last_token_positions(mask.astype(bool))[None, ..., None],
        axis=2)[:, :, 0]
  t_logits, _ = warm(logits, params, h, metric=metric)
  stages['logits'] = (t_logits, mc * pc * 2.0 * d * cfg.vocab_size)
  return dict(chunk_masks=mc, chunk_prompts=pc, stages={
      name: dict(seconds=s, gflop=fl / 1e9, gflop_per_s=fl / s / 1e9)
      for name, (s, fl) in stages.items()})
