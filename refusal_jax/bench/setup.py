"""What the ablation benchmark evaluates: model, SAE, prompts and masks.

A model given as a shape (`config.model` shape fields, no checkpoint) is built
with random weights (`random_params`) and exported to a temporary transformers
checkpoint; an SAE given without a path is a random JumpReLU SAE calibrated on
the prompts (`random_sae`). From there on a shape and a shipped checkpoint take
the same path: both frameworks load the checkpoint directory. `prepare` returns
the `Setup` every measurement of the benchmark reads. With `config.sae.layers`
there is one SAE per listed layer (random ones, or `sae.path` with '{layer}'
filled in) and the masks are over the candidates of all of them, one
`FeatureSpace` (sae/space.py).

Axis letters: see refusal_jax/axes.py (M masks, P prompts, C candidates; in
`random_sae`, N counts the prompts' real tokens).
"""

import dataclasses
import os
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

import refusal_jax
from refusal_jax import errors
from refusal_jax.checkpoints import export
from refusal_jax.models import sites
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sae import loaders as sae_loaders
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import metrics as metrics_lib

DTYPES = ('float32', 'bfloat16')


@dataclasses.dataclass
class Setup:
  """Everything both frameworks evaluate.

  Attributes:
    model: the JAX model loaded from `checkpoint`.
    checkpoint: transformers checkpoint directory.
    sae: the first SAE of `space` (at a resid_pre or resid_post site).
    input_ids: [P, T] left-padded prompts.
    attention_mask: [P, T].
    candidates: [C] latent indices the masks refer to, each of its SAE in
      `space` (`features`).
    masks: [M, C] 0/1 float32.
    metric: the metric.
    l0: mean number of SAE latents firing per real token on the prompts
      (averaged over the SAEs).
    space: every SAE of the benchmark, in forward-pass order.
    features: [C] the candidates as features of `space`.
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
  space: FeatureSpace
  features: np.ndarray
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
  from refusal_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from refusal_jax.organisms import behaviour  # pylint: disable=g-import-not-at-top
  if config.prompts.source in datasets.NAMES:
    instructions = datasets.load_prompts(config.prompts.source, 'test')
  elif config.prompts.source == 'harmful':
    from refusal_jax.organisms import data as organism_data  # pylint: disable=g-import-not-at-top
    test = organism_data.make_dataset(seed=config.seed)['test']
    instructions = [e.instruction for e in test if e.harmful]
  else:
    raise errors.ConfigError(
        f"prompts.source {config.prompts.source!r}; expected 'random', "
        f"'harmful' or a built-in prompt set ({', '.join(datasets.NAMES)})")
  if len(instructions) < n:
    raise errors.ConfigError(
        f'prompts.n_prompts {n} exceeds the {len(instructions)} '
        f'{config.prompts.source} test prompts')
  return behaviour.encode_prompts(model, instructions[:n])


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
  layers = tuple(config.sae.get('layers') or ())
  saes = [_load_sae(config, model, ids, mask, tmpdir, layer)
          for layer in (layers or (None,))]
  space = FeatureSpace.of(saes)
  c = config.sweep.n_candidates
  candidates, features, l0s = [], [], []
  for s, sae in enumerate(space.saes):
    counts, l0 = _firing(sae, _site_residual(model, sae.site, sae.layer, ids,
                                             mask), jnp.asarray(mask))
    if not 0 < c <= sae.d_sae:
      raise errors.ConfigError(
          f'sweep.n_candidates {c} must be in [1, {sae.d_sae}]')
    top = np.argsort(-np.asarray(counts), kind='stable')[:c]
    candidates.append(top)
    features.append(space.feature_ids(s, top))
    l0s.append(float(l0))
  n = c * len(space.saes)
  if config.sweep.n_masks <= 0:
    raise errors.ConfigError('sweep.n_masks must be positive')
  masks = (rng.random((config.sweep.n_masks, n))
           < config.sweep.mask_density).astype(np.float32)
  return Setup(model=model, checkpoint=checkpoint, sae=space.saes[0],
               input_ids=ids, attention_mask=mask,
               candidates=np.concatenate(candidates).astype(np.int32),
               masks=masks, metric=_metric(config, model),
               l0=float(np.mean(l0s)), space=space,
               features=np.concatenate(features), mesh=mesh)


def _load_sae(config, model: refusal_jax.Model, ids, mask, tmpdir: str,
              layer: int | None) -> SAE:
  """The benchmark's SAE at `layer` (None: the single `config.sae`).

  From `sae.path` ('{layer}' in it filled in), or a random SAE at
  `sae.site` of the layer (`sae.layer` when None).
  """
  if config.sae.path:
    sae_dir = config.sae.path.format(layer=layer)
    if not os.path.isdir(sae_dir):
      raise errors.SAEError(f'benchmark SAE {sae_dir} does not exist')
  else:
    sae = random_sae(model, ids, mask, d_sae=config.sae.d_sae,
                     site=config.sae.site,
                     layer=config.sae.layer if layer is None else layer,
                     target_l0=config.sae.target_l0,
                     seed=config.seed + (layer or 0))
    name = 'sae' if layer is None else f'sae_layer{layer}'
    sae_dir = sae_loaders.save_sae(sae, os.path.join(tmpdir, name),
                                   overwrite=True)
  sae = sae_loaders.load_sae(sae_dir, dtype=config.dtype)
  sae_loaders.check_sae_fits(sae, model.config.d_model,
                             model.config.num_layers)
  return sae
