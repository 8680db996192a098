"""Ablation throughput: the sweep engine against the PyTorch way, and a roofline.

  .venv/bin/python -m experiments.benchmark_ablation \
      --config=configs/benchmark_gemma2_2b_shape.py --workdir=/tmp/bench

In one process, on the same weights, SAE, prompts and masks, measures

* the engine (`engine.sae_sweep`): evaluations/s (one evaluation = one prompt
  under one latent mask), warm, with the compile time reported separately;
* the conventional baseline: the transformers PyTorch model of the same
  checkpoint with a forward hook at the SAE's site that encodes, zero-ablates
  (or clamps / scales) the masked latents and decodes with the error term kept
  (x + decode(edited) - decode(f)), one full forward pass per mask with the
  prompts batched, the metric read from the last position of the model's
  logits; its metric values are checked against the engine's;
* the roofline: `roofline.sweep_flops` per evaluation against a square-matmul
  peak measured in the same process.

Writes DIR/benchmark.json and DIR/throughput.png (engine throughput against the
number of masks and against the edited layer). A model given as a shape is
built with random weights and exported to a temporary checkpoint; from there
on a shape and a shipped checkpoint take the same path (both frameworks load
the checkpoint directory).
"""

import dataclasses
import functools
import gc
import json
import os
import tempfile
import time
from typing import Any

from absl import app
from absl import flags
from flax import nnx
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from experiments import common
import refusal_jax
from refusal_jax import errors
from refusal_jax.checkpoints import export
from refusal_jax.interventions import sae_edit
from refusal_jax.models import sites
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.pipeline import artifacts
from refusal_jax.sae import loaders as sae_loaders
from refusal_jax.sae.model import SAE
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import metrics as metrics_lib
from refusal_jax.sweeps import roofline

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Benchmark config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])

DTYPES = ('float32', 'bfloat16')
KEYS = ('jax_evals_per_s', 'torch_evals_per_s', 'speedup', 'achieved_gflops',
        'peak_gflops', 'fraction_of_peak', 'device', 'dtype', 'model',
        'n_prompts', 'n_masks', 'layer', 'n_tokens', 'compile_seconds',
        'max_abs_diff')


@dataclasses.dataclass
class Setup:
  """Everything both frameworks evaluate.

  Attributes:
    model: the JAX model loaded from `checkpoint`.
    checkpoint: transformers checkpoint directory.
    sae: the SAE (at a resid_pre or resid_post site).
    input_ids: [P, T] left-padded prompts.
    attention_mask: [P, T].
    candidates: [C] latent indices the masks refer to.
    masks: [M, C] 0/1 float32.
    metric: the metric.
    l0: mean number of SAE latents firing per real token on the prompts.
    mesh: device mesh the engine's parameters live on and its masks are
      split over (None = the default device).
  """
  model: refusal_jax.Model
  checkpoint: str
  sae: SAE
  input_ids: np.ndarray
  attention_mask: np.ndarray
  candidates: np.ndarray
  masks: np.ndarray
  metric: metrics_lib.Metric
  l0: float
  mesh: Any = None


def _check_dtype(name: str) -> None:
  if name not in DTYPES:
    raise errors.ConfigError(f'dtype {name!r}; expected one of {DTYPES}')


def shape_config(model_cfg) -> ModelConfig:
  """The ModelConfig of a random model given by `config.model` shape fields."""
  shape = dict(vocab_size=model_cfg.vocab_size, d_model=model_cfg.d_model,
               num_layers=model_cfg.num_layers, num_heads=model_cfg.num_heads,
               num_kv_heads=model_cfg.num_kv_heads,
               head_dim=model_cfg.head_dim, mlp_dim=model_cfg.mlp_dim)
  if model_cfg.family == 'gemma2':
    return ModelConfig.gemma2(sliding_window=model_cfg.sliding_window,
                              **shape)
  if model_cfg.family == 'llama':
    return ModelConfig.llama(**shape)
  raise errors.ConfigError(
      f"model.family {model_cfg.family!r}; expected 'gemma2' or 'llama'")


def random_params(config: ModelConfig, seed: int):
  """Float32 parameters with the initialiser's scales, drawn with numpy.

  Matrices are normal with std 0.02 (the embedding 1/sqrt(D) when it is
  scaled by sqrt(D)); norm weights are the identity (0 with Gemma's unit
  offset, 1 otherwise). numpy's generator is used because it is several times
  faster than JAX's on a CPU for a billion-parameter model.
  """
  rng = np.random.default_rng(seed)
  flat = []
  abstract = transformer.abstract_params(config)
  for path, var in nnx.to_flat_state(abstract):
    shape = tuple(var.shape)
    if len(shape) == 1:
      value = np.full(shape, 0.0 if config.norm_unit_offset else 1.0,
                      np.float32)
    else:
      std = (config.d_model ** -0.5
             if path[-1] == 'embed_tokens' and config.embed_scale else 0.02)
      value = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    flat.append((path, var.replace(jnp.asarray(value))))
  return nnx.from_flat_state(flat)


def _site_residual(model: refusal_jax.Model, site: str, layer: int, ids,
                   mask) -> jax.Array:
  """[P, T, D] residual at a resid_pre / resid_post site, no edit."""
  if site not in (sites.RESID_PRE, sites.RESID_POST):
    raise errors.ConfigError(f'sae.site {site!r}; the benchmark needs '
                             'resid_pre or resid_post')
  start = layer + 1 if site == sites.RESID_POST else layer
  return engine.prefix_residual(model.params, model.config, jnp.asarray(ids),
                                jnp.asarray(mask), start)


def random_sae(model: refusal_jax.Model, ids, mask, *, d_sae: int, site: str,
               layer: int, target_l0: float, seed: int) -> SAE:
  """A random JumpReLU SAE calibrated on the prompts' residuals at the site.

  Encoder columns are random unit vectors; the decoder is the encoder's
  transpose scaled so that the reconstructions have the residuals' mean norm;
  b_dec is the residuals' mean (subtracted before encoding); every threshold
  is the (1 - target_l0 / A) quantile of the pre-activations, so that about
  `target_l0` latents fire per token.
  """
  cfg = model.config
  if not 0 <= layer < cfg.num_layers:
    raise errors.ConfigError(
        f'sae.layer {layer} is outside the model\'s layers [0, '
        f'{cfg.num_layers})')
  if not 0 < target_l0 < d_sae:
    raise errors.ConfigError(f'sae.target_l0 {target_l0} must be in (0, '
                             f'{d_sae})')
  resid = _site_residual(model, site, layer, ids, mask)
  x = np.asarray(resid, np.float32)[np.asarray(mask).astype(bool)]  # [N, D]
  rng = np.random.default_rng(seed + 1)
  w = rng.standard_normal((cfg.d_model, d_sae), dtype=np.float32)
  w /= np.linalg.norm(w, axis=0, keepdims=True)
  b_dec = x.mean(0)
  pre = (x - b_dec) @ w  # [N, A]
  threshold = np.float32(np.quantile(pre, 1.0 - target_l0 / d_sae))
  f = np.where(pre > threshold, np.maximum(pre, 0.0), 0.0)
  recon = np.linalg.norm(f @ w.T, axis=-1).mean()
  scale = np.linalg.norm(x - b_dec, axis=-1).mean() / max(recon, 1e-6)
  return SAE(W_enc=jnp.asarray(w), b_enc=jnp.zeros((d_sae,), jnp.float32),
             W_dec=jnp.asarray(w.T * np.float32(scale)),
             b_dec=jnp.asarray(b_dec),
             threshold=jnp.full((d_sae,), threshold, jnp.float32),
             architecture='jumprelu', k=None, apply_b_dec_to_input=True,
             rescale_acts_by_decoder_norm=False, site=site, layer=layer,
             hook_name=sites.hook_name(site, layer), model_name='random',
             neuronpedia_id=None, dtype='float32')


def _prompts(config, model: refusal_jax.Model, rng):
  """(ids [P, T], mask [P, T]) for `config.prompts`."""
  n = config.prompts.n_prompts
  if n <= 0:
    raise errors.ConfigError('prompts.n_prompts must be positive')
  if config.prompts.source == 'random':
    t = config.prompts.n_tokens
    if t <= 0:
      raise errors.ConfigError('prompts.n_tokens must be positive')
    ids = rng.integers(3, model.config.vocab_size, (n, t)).astype(np.int32)
    return ids, np.ones_like(ids)
  if config.prompts.source == 'harmful':
    from refusal_jax.organisms import behaviour  # pylint: disable=g-import-not-at-top
    from refusal_jax.organisms import data as organism_data  # pylint: disable=g-import-not-at-top
    test = organism_data.make_dataset(seed=config.seed)['test']
    harmful = [e.instruction for e in test if e.harmful]
    if len(harmful) < n:
      raise errors.ConfigError(
          f'prompts.n_prompts {n} exceeds the {len(harmful)} harmful test '
          'prompts')
    return behaviour.encode_prompts(model, harmful[:n])
  raise errors.ConfigError(f'prompts.source {config.prompts.source!r}; '
                           "expected 'random' or 'harmful'")


def _metric(config, model: refusal_jax.Model) -> metrics_lib.Metric:
  refusal = tuple(config.metric.refusal_ids)
  if not refusal:
    if model.tokenizer is None:
      raise errors.ConfigError(
          'metric.refusal_ids is empty and the checkpoint has no tokenizer '
          'to read the refusal token from')
    from refusal_jax.organisms import tokenizer as organism_tokenizer  # pylint: disable=g-import-not-at-top
    refusal = tuple(organism_tokenizer.refusal_token_ids(model.tokenizer))
  return metrics_lib.metric_from(config.metric.name, refusal,
                                 tuple(config.metric.comply_ids))


@jax.jit
def _firing(sae: SAE, resid, mask):
  """Per-latent firing counts [A] and mean L0 over real tokens."""
  fires = (sae.encode(resid) > 0) & mask.astype(bool)[..., None]
  counts = fires.sum((0, 1))
  return counts, counts.sum() / jnp.maximum(mask.sum(), 1)


def prepare(config, tmpdir: str, mesh=None) -> Setup:
  """Loads or builds the model and SAE; draws prompts, candidates and masks.

  Args:
    config: the benchmark config.
    tmpdir: where a random model and SAE are exported.
    mesh: optional device mesh to load the parameters into.

  Returns:
    The Setup.

  Raises:
    errors.RefusalJaxError: a missing path, a bad config value, an SAE that
      does not fit the model.
  """
  _check_dtype(config.dtype)
  dtype = jnp.dtype(config.dtype)
  checkpoint = config.model.checkpoint
  if checkpoint:
    if not os.path.isdir(checkpoint):
      raise errors.CheckpointError(
          f'benchmark model checkpoint {checkpoint} does not exist')
  else:
    cfg = shape_config(config.model)
    checkpoint = export.save_hf_checkpoint(
        random_params(cfg, config.seed), cfg, os.path.join(tmpdir, 'model'))
  model = refusal_jax.load_model(checkpoint, dtype=dtype, mesh=mesh)
  rng = np.random.default_rng(config.seed)
  ids, mask = _prompts(config, model, rng)
  if config.sae.path:
    if not os.path.isdir(config.sae.path):
      raise errors.SAEError(f'benchmark SAE {config.sae.path} does not exist')
    sae_dir = config.sae.path
  else:
    sae = random_sae(model, ids, mask, d_sae=config.sae.d_sae,
                     site=config.sae.site, layer=config.sae.layer,
                     target_l0=config.sae.target_l0, seed=config.seed)
    sae_dir = sae_loaders.save_sae(sae, os.path.join(tmpdir, 'sae'),
                                   overwrite=True)
  sae = sae_loaders.load_sae(sae_dir, dtype=config.dtype)
  sae_loaders.check_sae_fits(sae, model.config.d_model,
                             model.config.num_layers)
  counts, l0 = _firing(sae, _site_residual(model, sae.site, sae.layer, ids,
                                           mask), jnp.asarray(mask))
  c = config.sweep.n_candidates
  if not 0 < c <= sae.d_sae:
    raise errors.ConfigError(
        f'sweep.n_candidates {c} must be in [1, {sae.d_sae}]')
  candidates = np.argsort(-np.asarray(counts), kind='stable')[:c]
  if config.sweep.n_masks <= 0:
    raise errors.ConfigError('sweep.n_masks must be positive')
  masks = (rng.random((config.sweep.n_masks, c))
           < config.sweep.mask_density).astype(np.float32)
  return Setup(model=model, checkpoint=checkpoint, sae=sae, input_ids=ids,
               attention_mask=mask, candidates=candidates.astype(np.int32),
               masks=masks, metric=_metric(config, model), l0=float(l0),
               mesh=mesh)


# --------------------------------------------------------------------------
# The engine


def _chunks(config) -> engine.Chunks:
  return engine.Chunks(masks=config.sweep.chunk_masks,
                       prompts=config.sweep.chunk_prompts)


def _sweep(setup: Setup, config, sae=None, masks=None, n_prompts=None):
  n_prompts = n_prompts or len(setup.input_ids)
  return engine.sae_sweep(
      setup.model.params, setup.model.config, sae or setup.sae,
      setup.input_ids[:n_prompts], setup.attention_mask[:n_prompts],
      setup.candidates, setup.masks if masks is None else masks,
      metric=setup.metric, mode=config.sweep.mode, value=config.sweep.value,
      chunks=_chunks(config), trim_last_layer=config.sweep.trim_last_layer,
      mesh=setup.mesh)


def _timed(fn, repeats: int = 1):
  """(best seconds, last result) of `repeats` calls of fn()."""
  best, out = np.inf, None
  for _ in range(max(repeats, 1)):
    began = time.perf_counter()
    out = fn()
    best = min(best, time.perf_counter() - began)
  return best, out


def time_engine(setup: Setup, config) -> dict[str, Any]:
  """Engine compile seconds, warm evaluations/s and the [M, P] values.

  The compile time is that of one call on a single chunk (which compiles
  every function the sweep uses) minus the same call's warm time.
  """
  n_masks, n_prompts = setup.masks.shape[0], setup.input_ids.shape[0]
  one_masks = setup.masks[:min(config.sweep.chunk_masks, n_masks)]
  one_prompts = min(config.sweep.chunk_prompts, n_prompts)
  cold, _ = _timed(lambda: _sweep(setup, config, masks=one_masks,
                                  n_prompts=one_prompts))
  warm, _ = _timed(lambda: _sweep(setup, config, masks=one_masks,
                                  n_prompts=one_prompts))
  seconds, values = _timed(lambda: _sweep(setup, config),
                           config.sweep.repeats)
  return dict(compile_seconds=max(cold - warm, 0.0), seconds=seconds,
              evals_per_s=n_masks * n_prompts / seconds, values=values)


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
    return _timed(lambda: jax.block_until_ready(fn(*args, **kwargs)), 2)

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


# --------------------------------------------------------------------------
# The PyTorch baseline


def _torch_dtype(name: str):
  import torch  # pylint: disable=g-import-not-at-top
  return {'float32': torch.float32, 'bfloat16': torch.bfloat16}[name]


class TorchSAEHook:
  """Forward hook editing SAE latents at one decoder layer's output.

  Encodes the hooked hidden states, edits the latents where `latent_mask` [A]
  is set, and returns x + (decode(edited) - decode(f)) at real tokens (the
  reconstruction error is kept). SAE maths run in float32.
  """

  def __init__(self, sae: SAE, mode: str, value: float, device):
    import torch  # pylint: disable=g-import-not-at-top
    as_t = lambda a: torch.from_numpy(
        np.array(jnp.asarray(a, jnp.float32))).to(device)
    self.sae = sae
    self.w_enc, self.b_enc = as_t(sae.W_enc), as_t(sae.b_enc)
    self.w_dec, self.b_dec = as_t(sae.W_dec), as_t(sae.b_dec)
    self.threshold = None if sae.threshold is None else as_t(sae.threshold)
    self.dec_norms = self.w_dec.norm(dim=-1)
    self.mode, self.value = mode, value
    self.latent_mask = None  # [A] float32
    self.token_mask = None  # [B, T] float32

  def encode(self, x):
    import torch  # pylint: disable=g-import-not-at-top
    sae = self.sae
    if sae.apply_b_dec_to_input:
      x = x - self.b_dec
    pre = x @ self.w_enc + self.b_enc
    if sae.architecture == 'jumprelu':
      return torch.where(pre > self.threshold, torch.relu(pre),
                         torch.zeros_like(pre))
    if sae.architecture == 'relu':
      return torch.relu(pre)
    if sae.rescale_acts_by_decoder_norm:
      pre = pre * self.dec_norms
    values, idx = pre.topk(sae.k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, torch.relu(values))

  def decode(self, f):
    if self.sae.architecture == 'topk' and self.sae.rescale_acts_by_decoder_norm:
      f = f / self.dec_norms
    return f @ self.w_dec + self.b_dec

  def __call__(self, module, args, output):
    del module, args
    hidden = output[0] if isinstance(output, tuple) else output
    x = hidden.float()
    f = self.encode(x)
    m = self.latent_mask
    if self.mode == 'zero':
      edited = f * (1.0 - m)
    elif self.mode == 'clamp':
      edited = f + m * (self.value - f)
    else:
      edited = f + m * (self.value - 1.0) * f
    delta = (self.decode(edited) - self.decode(f)) * self.token_mask[..., None]
    out = (x + delta).to(hidden.dtype)
    return (out,) + tuple(output[1:]) if isinstance(output, tuple) else out


def _torch_metric(metric: metrics_lib.Metric, logits):
  """The metric of metrics.py on torch logits [B, V] -> [B] float32."""
  import torch  # pylint: disable=g-import-not-at-top
  logits = logits.float()
  ref = torch.tensor(metric.refusal_ids, device=logits.device)
  if metric.name == 'logit_diff':
    comply = torch.tensor(metric.comply_ids, device=logits.device)
    return logits[:, ref].mean(-1) - logits[:, comply].mean(-1)
  p = torch.softmax(logits, dim=-1)[:, ref].sum(-1)
  if metric.name == 'refusal_prob':
    return p
  return torch.log(p + 1e-8) - torch.log(1 - p + 1e-8)


def time_torch(setup: Setup, config) -> dict[str, Any]:
  """The hook-based PyTorch baseline: evaluations/s and [M', P] values."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  device = config.torch.device
  if device == 'auto':
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
  family = setup.model.config.family
  model = transformers.AutoModelForCausalLM.from_pretrained(
      setup.checkpoint, dtype=_torch_dtype(config.dtype),
      attn_implementation='eager' if family == 'gemma2' else 'sdpa').to(
          device).eval()
  sae = setup.sae
  hook = TorchSAEHook(sae, config.sweep.mode, config.sweep.value, device)
  if sae.site == sites.RESID_POST:
    module = model.model.layers[sae.layer]
  elif sae.layer > 0:
    module = model.model.layers[sae.layer - 1]
  else:
    module = model.model.embed_tokens
  handle = module.register_forward_hook(hook)
  n = config.torch.n_masks or setup.masks.shape[0]
  masks = setup.masks[:n]
  batch = config.torch.batch_prompts
  ids = torch.from_numpy(setup.input_ids.astype(np.int64)).to(device)
  attn = torch.from_numpy(setup.attention_mask.astype(np.int64)).to(device)
  positions = (attn.cumsum(-1) - 1).clamp(min=0)
  last = (torch.arange(ids.shape[1], device=device)[None] * attn).argmax(-1)
  dense = np.zeros((n, sae.d_sae), np.float32)
  dense[:, setup.candidates] = masks

  def evaluate(rows):
    out = np.zeros((len(rows), ids.shape[0]), np.float32)
    with torch.inference_mode():
      for i, row in enumerate(rows):
        hook.latent_mask = torch.from_numpy(dense[row]).to(device)
        for p0 in range(0, ids.shape[0], batch):
          sl = slice(p0, p0 + batch)
          hook.token_mask = attn[sl].float()
          logits = model(input_ids=ids[sl], attention_mask=attn[sl],
                         position_ids=positions[sl]).logits
          rows_last = logits[torch.arange(logits.shape[0]), last[sl]]
          out[i, sl] = _torch_metric(setup.metric, rows_last).cpu().numpy()
    return out

  try:
    evaluate([0])  # warm-up, not timed
    seconds, values = _timed(lambda: evaluate(list(range(n))))
  finally:
    handle.remove()
  return dict(seconds=seconds, evals_per_s=n * ids.shape[0] / seconds,
              values=values, n_masks=n, device=device,
              threads=torch.get_num_threads())


# --------------------------------------------------------------------------
# Plot, report


def throughput_curves(setup: Setup, config) -> dict[str, list]:
  """Engine evaluations/s against the number of masks and the edited layer."""
  n_prompts = setup.input_ids.shape[0]
  by_masks = []
  for m in config.plot.n_masks:
    if not 0 < m:
      raise errors.ConfigError(f'plot.n_masks has {m}; must be positive')
    rng = np.random.default_rng(config.seed + m)
    masks = (rng.random((m, setup.candidates.shape[0]))
             < config.sweep.mask_density).astype(np.float32)
    _sweep(setup, config, masks=masks)  # compile
    seconds, _ = _timed(lambda: _sweep(setup, config, masks=masks))
    by_masks.append([m, m * n_prompts / seconds])
  by_layer = []
  masks = setup.masks[:min(config.sweep.chunk_masks, setup.masks.shape[0])]
  for layer in config.plot.layers:
    if not 0 <= layer < setup.model.config.num_layers:
      raise errors.ConfigError(
          f'plot.layers has {layer}, outside the model\'s layers [0, '
          f'{setup.model.config.num_layers})')
    sae = setup.sae.replace(site=sites.RESID_POST, layer=layer,
                            hook_name=sites.hook_name(sites.RESID_POST, layer))
    _sweep(setup, config, sae=sae, masks=masks)  # compile
    seconds, _ = _timed(lambda: _sweep(setup, config, sae=sae, masks=masks))
    by_layer.append([layer, len(masks) * n_prompts / seconds])
  return dict(by_masks=by_masks, by_layer=by_layer)


def plot(curves: dict[str, list], result: dict[str, Any], path: str) -> None:
  """Writes the two throughput panels to `path` (PNG)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  title = (f"{result['model']}, {result['dtype']}, {result['device']}, "
           f"{result['n_prompts']} prompts x {result['n_tokens']} tokens")
  if curves['by_masks']:
    m, e = zip(*curves['by_masks'])
    axes[0].plot(m, e, 'o-', label='engine')
    axes[0].axhline(result['torch_evals_per_s'], color='C3', ls='--',
                    label='PyTorch hooks')
    axes[0].set_xscale('log', base=2)
    axes[0].set_xlabel('masks')
    axes[0].set_ylabel('evaluations / s')
    axes[0].set_title(f"edit at layer {result['layer']}")
    axes[0].legend()
  if curves['by_layer']:
    layers, e = zip(*curves['by_layer'])
    axes[1].plot(layers, e, 'o-')
    axes[1].set_xlabel('edited layer (resid_post)')
    axes[1].set_ylabel('evaluations / s')
    axes[1].set_title(f"{result['profile_chunk']} masks per point")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _device() -> str:
  dev = jax.devices()[0]
  if dev.platform == 'cpu':
    return f'cpu ({os.cpu_count()} cores)'
  return f'{dev.platform}: {dev.device_kind}'


def run_benchmark(config, workdir: str, mesh=None) -> dict[str, Any]:
  """Runs the whole benchmark; writes benchmark.json and throughput.png.

  Args:
    config: the benchmark config (see configs/benchmark_gemma2_2b_shape.py).
    workdir: output directory.
    mesh: optional device mesh for the engine (see parallel/mesh.py).

  Returns:
    The dict written to benchmark.json.

  Raises:
    errors.RefusalJaxError: on a missing asset or bad config value, or when
      in float32 the PyTorch and JAX metric values differ by
      `config.tolerance` or more (after the files are written).
  """
  os.makedirs(workdir, exist_ok=True)
  load_start = os.getloadavg()
  with tempfile.TemporaryDirectory(prefix='benchmark-ablation-') as tmp:
    setup = prepare(config, tmp, mesh)
    cfg = setup.model.config
    measure_peak = lambda: roofline.measure_matmul_peak(
        jnp.dtype(config.dtype), config.peak.size, config.peak.repeats)
    # The peak is measured right before and right after the engine and the
    # larger value is used (the more conservative fraction_of_peak).
    peaks = [measure_peak()]
    jax_run = time_engine(setup, config)
    peaks.append(measure_peak())
    peak = max(peaks)
    torch_run = time_torch(setup, config)
    gc.collect()  # release the PyTorch model before the profile and plot
  n_masks, n_prompts = setup.masks.shape[0], setup.input_ids.shape[0]
  t = setup.input_ids.shape[1]
  start = engine.sae_resume_layer(setup.sae)
  flops = roofline.sweep_flops(
      cfg, n_tokens=t, site_layer_resume=start,
      d_sae_candidates=setup.candidates.shape[0],
      metric_vocab=(cfg.vocab_size if setup.metric.name != 'logit_diff' else
                    len(setup.metric.refusal_ids) +
                    len(setup.metric.comply_ids)))
  torch_flops = roofline.hooked_forward_flops(cfg, n_tokens=t,
                                              d_sae=setup.sae.d_sae)
  diff = np.abs(torch_run['values'] -
                jax_run['values'][:torch_run['n_masks']])
  achieved = jax_run['evals_per_s'] * flops / 1e9
  result = dict(
      jax_evals_per_s=jax_run['evals_per_s'],
      torch_evals_per_s=torch_run['evals_per_s'],
      speedup=jax_run['evals_per_s'] / torch_run['evals_per_s'],
      achieved_gflops=achieved, peak_gflops=peak,
      peak_gflops_before_after=peaks,
      fraction_of_peak=achieved / peak, device=_device(),
      dtype=config.dtype, model=config.model.name, n_prompts=n_prompts,
      n_masks=n_masks, layer=setup.sae.layer, site=setup.sae.site,
      n_tokens=t, compile_seconds=jax_run['compile_seconds'],
      max_abs_diff=float(diff.max()),
      jax_seconds=jax_run['seconds'], torch_seconds=torch_run['seconds'],
      torch_n_masks=torch_run['n_masks'], torch_device=torch_run['device'],
      torch_threads=torch_run['threads'],
      flops_per_eval=flops, torch_flops_per_eval=torch_flops,
      torch_achieved_gflops=torch_run['evals_per_s'] * torch_flops / 1e9,
      d_sae=setup.sae.d_sae, sae_l0=setup.l0,
      n_candidates=int(setup.candidates.shape[0]),
      chunk_masks=config.sweep.chunk_masks,
      chunk_prompts=config.sweep.chunk_prompts,
      trim_last_layer=config.sweep.trim_last_layer,
      metric=setup.metric.name, checkpoint=config.model.checkpoint or None,
      metric_mean=float(jax_run['values'].mean()),
      metric_std_over_masks=float(jax_run['values'].std(0).mean()),
      profile_chunk=min(config.sweep.chunk_masks, n_masks))
  if config.profile:
    result['profile'] = profile_engine(setup, config)
  curves = throughput_curves(setup, config)
  result['throughput_vs_masks'] = curves['by_masks']
  result['throughput_vs_layer'] = curves['by_layer']
  result['load_average_start'] = list(load_start)
  result['load_average_end'] = list(os.getloadavg())
  result['config'] = config.to_dict()
  result['provenance'] = artifacts.provenance()
  artifacts.write_json(os.path.join(workdir, 'benchmark.json'), result)
  plot(curves, result, os.path.join(workdir, 'throughput.png'))
  if config.dtype == 'float32' and not diff.max() < config.tolerance:
    raise errors.RefusalJaxError(
        f'PyTorch and JAX metric values differ by up to {diff.max():.3g} '
        f'(tolerance {config.tolerance}); see {workdir}/benchmark.json')
  return result


@common.main_wrapper
def main(argv):
  del argv
  result = run_benchmark(_CONFIG.value, _WORKDIR.value,
                         mesh=common.mesh_from_flags())
  summary = {k: result[k] for k in KEYS}
  print(json.dumps(summary, indent=2))
  print(f'results: {os.path.join(_WORKDIR.value, "benchmark.json")}')


if __name__ == '__main__':
  app.run(main)
