"""SAE loading from local folders (SAELens, Gemma/Llama Scope) and saving.

`load_sae(path)` looks at the files in `path` and picks the format:

  SAELens      cfg.json + sae_weights.safetensors (6.x and pre-6.0 configs)
  Gemma Scope  params.npz in .../layer_{L}/width_{W}/{average_l0_{N}|canonical}
  Llama Scope  hyperparams.json + checkpoints/final.safetensors

Every format becomes the same `SAE` taking raw residual activations; any
dataset-wide input scaling is folded into the weights
(`model.fold_input_scaling`). `save_sae` writes SAELens 6.x format.

Llama Scope conversion (OpenMOSS semantics). OpenMOSS runs, for raw x,

  x_n   = s_in * x,                 s_in  = sqrt(d_model) / norm['in']
  pre   = x_n @ E^T + e           (E = encoder.weight [A, D], e = encoder.bias)
  f_i   = pre_i * 1[pre_i * n_i > theta]
  x_hat = (f @ Dw^T + c) / s_out,   s_out = sqrt(d_model) / norm['out']

with Dw = decoder.weight [D, A], c = decoder.bias, `norm` the
`dataset_average_activation_norm` entry of hyperparams.json, and
n_i = ||Dw[:, i]|| when `sparsity_include_decoder_norm` is true (n_i = 1
otherwise). The loader stores W_enc = s_in * E^T, b_enc = e, W_dec = Dw^T /
s_out, b_dec = c / s_out, so `encode(x)` returns exactly OpenMOSS's `f`
(pre-activations in the normalised space) and `decode(f)` the raw-space
reconstruction. The scalar threshold follows SAELens's conversion,
theta = jump_relu_threshold * s_in, i.e. the released value is read as being
in raw-activation units (OpenMOSS's training code compares the normalised
pre-activations against the threshold as stored; which convention the
released files use is unverified, so check L0 on real prompts: Llama Scope
was trained as TopK with k = 50). The decoder-norm test is folded into a
per-latent threshold: for n_i > 0 and theta >= 0, `pre_i * n_i > theta` iff
`pre_i > theta / n_i`, so threshold_i = theta / n_i (latents with n_i = 0 can
never fire and get the largest float32). SAELens itself ignores
`sparsity_include_decoder_norm`; this loader does not. With
`apply_decoder_bias_to_pre_encoder` the input has b_dec subtracted
(`apply_b_dec_to_input`), which folds exactly when norm['in'] == norm['out'].
"""

import json
import math
import os
import pathlib
import re
from typing import Any

import jax.numpy as jnp
import numpy as np
from safetensors import numpy as st_numpy

from refusal_jax import atomic
from refusal_jax import errors
from refusal_jax.models import sites
from refusal_jax.sae.model import ARCHITECTURES
from refusal_jax.sae.model import SAE
from refusal_jax.sae.model import fold_input_scaling

SAELENS_CFG = 'cfg.json'
SAELENS_WEIGHTS = 'sae_weights.safetensors'
GEMMA_SCOPE_PARAMS = 'params.npz'
LLAMA_SCOPE_HPARAMS = 'hyperparams.json'
LLAMA_SCOPE_WEIGHTS = os.path.join('checkpoints', 'final.safetensors')

# The SAELens version whose on-disk format `save_sae` writes.
SAELENS_FORMAT_VERSION = '6.18.0'

GEMMA_SCOPE_WIDTHS = {
    '16k': 16384, '32k': 32768, '65k': 65536, '131k': 131072,
    '262k': 262144, '524k': 524288, '1m': 1048576,
}
# Hidden sizes of the Gemma 2 models Gemma Scope was trained on.
_GEMMA2_BY_D_MODEL = {
    2304: 'google/gemma-2-2b', 3584: 'google/gemma-2-9b',
    4608: 'google/gemma-2-27b',
}
LLAMA_SCOPE_MODEL_NAME = 'meta-llama/Llama-3.1-8B'

# Gemma Scope's releases for the instruction-tuned models are named
# gemma-scope-<size>-it-... (e.g. gemma-scope-9b-it-res); the others are for
# the base models.
_GEMMA_SCOPE_IT_RE = re.compile(r'gemma-scope-[^/]*-it-')
_GEMMA_PATH_RE = re.compile(
    r'(?:^|/)layer_(\d+)/width_([0-9a-z]+)/(?:average_l0_\d+|canonical)/?$')
_DTYPES = ('float32', 'float16', 'bfloat16', 'float64')
_FORMATS = ('SAELens (cfg.json + sae_weights.safetensors), Gemma Scope '
            '(params.npz), Llama Scope (hyperparams.json + '
            'checkpoints/final.safetensors)')


def load_sae(path: str | os.PathLike, *, dtype: Any = None,
             norm_scaling_factor: float | None = None) -> SAE:
  """Loads an SAE from a local folder, detecting its format.

  Args:
    path: folder holding one SAE.
    dtype: dtype for the weights and biases (e.g. 'bfloat16'); None keeps the
      dtype the files declare (SAELens cfg `dtype`, Llama Scope `dtype`, the
      stored arrays otherwise). JumpReLU thresholds are always float32.
    norm_scaling_factor: for SAELens configs with `normalize_activations ==
      'expected_average_only_in'`, the dataset scaling factor s (SAELens's
      `norm_scaling_factor` from its pretrained-SAE directory); folded as
      W_enc *= s, W_dec /= s, b_dec /= s.

  Returns:
    The SAE, taking raw activations.

  Raises:
    errors.SAEError: the path is missing, the folder matches no format, or the
      files are inconsistent, non-finite or ask for an unsupported feature.
  """
  folder = pathlib.Path(path)
  if not folder.exists():
    raise errors.SAEError(f'SAE path {str(folder)!r} does not exist')
  if not folder.is_dir():
    raise errors.SAEError(
        f'SAE path {str(folder)!r} is a file; pass the folder that holds it')
  dtype_name = None if dtype is None else _dtype_name(dtype, 'dtype argument')
  fmt = _detect_format(folder)
  if fmt != 'saelens' and norm_scaling_factor is not None:
    raise errors.SAEError(
        f'norm_scaling_factor applies only to SAELens folders, but {folder} '
        f'is {fmt.replace("_", " ")}')
  if fmt == 'saelens':
    return _load_saelens(folder, dtype_name, norm_scaling_factor)
  if fmt == 'gemma_scope':
    return _load_gemma_scope(folder, dtype_name)
  return _load_llama_scope(folder, dtype_name)


def save_sae(sae: SAE, path: str | os.PathLike, *,
             overwrite: bool = False) -> pathlib.Path:
  """Writes an SAE as a SAELens 6.x folder (cfg.json + sae_weights.safetensors).

  The folder is written under a temporary name next to `path` and renamed
  into place, so an interrupted save never leaves a partial folder at `path`.

  Args:
    sae: the SAE.
    path: destination folder.
    overwrite: replace an existing folder at `path`.

  Returns:
    The destination folder.

  Raises:
    errors.SAEError: `path` exists and `overwrite` is False, or the SAE's
      hook_name disagrees with its site/layer.
  """
  dest = pathlib.Path(path)
  if dest.exists() and not overwrite:
    raise errors.SAEError(
        f'{dest} already exists; pass overwrite=True to replace it')
  if _parse_hook(sae.hook_name, 'SAE hook_name') != (sae.site, sae.layer):
    raise errors.SAEError(
        f'SAE hook_name {sae.hook_name!r} disagrees with site {sae.site!r} '
        f'layer {sae.layer}')
  with atomic.directory(dest) as tmp:
    tmp = pathlib.Path(tmp)
    (tmp / SAELENS_CFG).write_text(json.dumps(_saelens_cfg(sae), indent=2))
    tensors = {
        'W_enc': np.asarray(sae.W_enc), 'W_dec': np.asarray(sae.W_dec),
        'b_enc': np.asarray(sae.b_enc), 'b_dec': np.asarray(sae.b_dec),
    }
    if sae.architecture == 'jumprelu':
      tensors['threshold'] = np.asarray(sae.threshold, np.float32)
    st_numpy.save_file(tensors, str(tmp / SAELENS_WEIGHTS))
  return dest


def check_sae_fits(sae: SAE, d_model: int, num_layers: int) -> None:
  """Checks that an SAE can be attached to a model.

  Args:
    sae: the SAE.
    d_model: the model's hidden size.
    num_layers: the model's number of decoder layers.

  Raises:
    errors.SAEError: the widths differ or the SAE's layer is not in the model.
  """
  if sae.d_in != d_model:
    raise errors.SAEError(
        f"SAE d_in {sae.d_in} does not match the model's hidden size "
        f'{d_model}: load an SAE trained on this model (this one was trained '
        f'on {sae.model_name or "an unknown model"!s} at {sae.hook_name})')
  if not 0 <= sae.layer < num_layers:
    raise errors.SAEError(
        f'SAE layer {sae.layer} is outside the model\'s layers '
        f'[0, {num_layers}): load an SAE for one of this model\'s layers')


# ----------------------------------------------------------------- detection


def _detect_format(folder: pathlib.Path) -> str:
  has = {name: (folder / name).is_file() for name in (
      SAELENS_CFG, SAELENS_WEIGHTS, GEMMA_SCOPE_PARAMS, LLAMA_SCOPE_HPARAMS,
      LLAMA_SCOPE_WEIGHTS)}
  found = []
  if has[SAELENS_CFG] or has[SAELENS_WEIGHTS]:
    found.append('saelens')
  if has[GEMMA_SCOPE_PARAMS]:
    found.append('gemma_scope')
  if has[LLAMA_SCOPE_HPARAMS] or has[LLAMA_SCOPE_WEIGHTS]:
    found.append('llama_scope')
  if len(found) > 1:
    raise errors.SAEError(
        f'{folder} mixes files of several SAE formats ({", ".join(found)}); '
        'keep one SAE per folder')
  if not found:
    listing = sorted(p.name + ('/' if p.is_dir() else '')
                     for p in folder.iterdir())
    shown = ', '.join(listing[:12]) + (', ...' if len(listing) > 12 else '')
    raise errors.SAEError(
        f'no SAE found in {folder}: looked for {_FORMATS}; found '
        f'{shown or "an empty folder"}')
  pairs = {'saelens': (SAELENS_CFG, SAELENS_WEIGHTS),
           'llama_scope': (LLAMA_SCOPE_HPARAMS, LLAMA_SCOPE_WEIGHTS)}
  for name in pairs.get(found[0], ()):
    if not has[name]:
      raise errors.SAEError(
          f'{found[0].replace("_", " ")} folder {folder} lacks {name}')
  return found[0]


# ------------------------------------------------------------------- SAELens


def _load_saelens(folder: pathlib.Path, dtype_name: str | None,
                  norm_scaling_factor: float | None) -> SAE:
  where = str(folder / SAELENS_CFG)
  cfg = _upgrade_saelens_cfg(_read_json(folder / SAELENS_CFG), where)
  arch = cfg['architecture']
  d_in, d_sae = _cfg_int(cfg, 'd_in', where), _cfg_int(cfg, 'd_sae', where)
  meta = cfg['metadata']
  hook = meta.get('hook_name')
  if not isinstance(hook, str):
    raise errors.SAEError(f'{where} has no metadata.hook_name')
  if meta.get('hook_head_index') is not None:
    raise errors.SAEError(
        f'{where} sets hook_head_index {meta["hook_head_index"]}; only '
        'residual-stream SAEs over whole sites are supported')
  if cfg.get('reshape_activations', 'none') != 'none':
    raise errors.SAEError(
        f'{where} sets reshape_activations {cfg["reshape_activations"]!r}; '
        "only 'none' is supported")
  site, layer = _parse_hook(hook, where)

  wfile = str(folder / SAELENS_WEIGHTS)
  tensors = _read_safetensors(folder / SAELENS_WEIGHTS)
  required = ['W_enc', 'W_dec', 'b_enc', 'b_dec']
  if arch == 'jumprelu':
    required.append('threshold')
  optional = ['scaling_factor'] if cfg.get('finetuning_scaling_factor') else []
  _check_keys(tensors, required, optional, wfile)
  _check_shapes(tensors, d_in, d_sae, wfile)
  _check_finite(tensors, wfile)
  arrays = {name: tensors[name].astype(np.float32) for name in tensors}
  if 'scaling_factor' in arrays:
    arrays['W_dec'] = arrays['W_dec'] * arrays.pop('scaling_factor')[:, None]

  norm = cfg.get('normalize_activations', 'none')
  if norm == 'expected_average_only_in':
    if norm_scaling_factor is None:
      raise errors.SAEError(
          f"{where} normalize_activations='expected_average_only_in' needs "
          "the dataset scaling factor: pass load_sae(..., "
          'norm_scaling_factor=s) (SAELens norm_scaling_factor)')
    s = _positive_finite(norm_scaling_factor, 'norm_scaling_factor', where)
    arrays['W_enc'], arrays['W_dec'], arrays['b_dec'] = fold_input_scaling(
        arrays['W_enc'], arrays['W_dec'], arrays['b_dec'], s, s)
  elif norm != 'none':
    raise errors.SAEError(
        f'{where} normalize_activations={norm!r} cannot be folded into the '
        "weights; supported: 'none', 'expected_average_only_in'")
  elif norm_scaling_factor is not None:
    raise errors.SAEError(
        f"norm_scaling_factor given but {where} has normalize_activations="
        "'none'")

  k = None
  if arch == 'topk':
    k = _cfg_int(cfg, 'k', where)
    if not 1 <= k <= d_sae:
      raise errors.SAEError(f'{where} k={k} is outside [1, d_sae={d_sae}]')
  file_dtype = _dtype_name(cfg.get('dtype', 'float32'), f'{where} dtype')
  return _make_sae(
      arrays, dtype_name or file_dtype, architecture=arch, k=k,
      apply_b_dec_to_input=bool(cfg.get('apply_b_dec_to_input', True)),
      rescale_acts_by_decoder_norm=bool(
          cfg.get('rescale_acts_by_decoder_norm', False)) and arch == 'topk',
      site=site, layer=layer, hook_name=hook,
      model_name=str(meta.get('model_name') or ''),
      neuronpedia_id=meta.get('neuronpedia_id'))


def _upgrade_saelens_cfg(cfg: dict[str, Any], where: str) -> dict[str, Any]:
  """Brings a SAELens cfg.json to 6.x field names.

  Pre-6.0 configs (no `sae_lens_version`, top level or in `metadata`) get
  hook_point -> hook_name, activation_fn_str -> activation_fn, a default
  apply_b_dec_to_input of True, bool normalize_activations (True ->
  'expected_average_only_in'), and activation_fn 'topk' with
  activation_fn_kwargs.k -> architecture 'topk'. Top-level model_name,
  hook_name and neuronpedia_id move into `metadata`.

  Args:
    cfg: the parsed cfg.json.
    where: file name for error messages.

  Returns:
    A new dict with 6.x fields and `architecture` mapped onto
    `ARCHITECTURES` ('standard' -> 'relu').

  Raises:
    errors.SAEError: the architecture or activation is not supported.
  """
  cfg = dict(cfg)
  meta = cfg.get('metadata')
  meta = dict(meta) if isinstance(meta, dict) else {}
  version = cfg.get('sae_lens_version') or meta.get('sae_lens_version')
  if not version or _version_tuple(str(version)) < (6,):
    if 'hook_point' in cfg and 'hook_name' not in cfg:
      cfg['hook_name'] = cfg.pop('hook_point')
    if 'activation_fn_str' in cfg and 'activation_fn' not in cfg:
      cfg['activation_fn'] = cfg.pop('activation_fn_str')
    cfg.setdefault('apply_b_dec_to_input', True)
    norm = cfg.get('normalize_activations')
    if isinstance(norm, bool) or norm is None:
      cfg['normalize_activations'] = (
          'expected_average_only_in' if norm else 'none')
    act = cfg.get('activation_fn', 'relu')
    arch = cfg.get('architecture', 'standard')
    if act == 'topk':
      kwargs = cfg.get('activation_fn_kwargs') or {}
      if 'k' not in kwargs:
        raise errors.SAEError(
            f'{where} has activation_fn topk without activation_fn_kwargs.k')
      cfg['architecture'], cfg['k'] = 'topk', kwargs['k']
    elif arch == 'standard' and act != 'relu':
      raise errors.SAEError(
          f'{where} activation_fn {act!r} is not supported; supported: '
          'relu, topk')
    for key in ('model_name', 'hook_name', 'neuronpedia_id',
                'hook_head_index'):
      if key in cfg and key not in meta:
        meta[key] = cfg[key]
  cfg['metadata'] = meta
  arch = cfg.get('architecture', 'standard')
  arch = 'relu' if arch == 'standard' else arch
  if arch not in ARCHITECTURES:
    raise errors.SAEError(
        f'{where} architecture {cfg.get("architecture")!r} is not supported; '
        "supported: standard, jumprelu, topk")
  cfg['architecture'] = arch
  if arch == 'topk':
    cfg.setdefault('k', 100)
  return cfg


def _saelens_cfg(sae: SAE) -> dict[str, Any]:
  cfg = {
      'architecture': 'standard' if sae.architecture == 'relu'
                      else sae.architecture,
      'd_in': sae.d_in,
      'd_sae': sae.d_sae,
      'dtype': sae.dtype,
      'device': 'cpu',
      'apply_b_dec_to_input': sae.apply_b_dec_to_input,
      'normalize_activations': 'none',
      'reshape_activations': 'none',
      'metadata': {
          'model_name': sae.model_name,
          'hook_name': sae.hook_name,
          'hook_head_index': None,
          'neuronpedia_id': sae.neuronpedia_id,
          'sae_lens_version': SAELENS_FORMAT_VERSION,
      },
  }
  if sae.architecture == 'topk':
    cfg['k'] = sae.k
    cfg['rescale_acts_by_decoder_norm'] = sae.rescale_acts_by_decoder_norm
  return cfg


# --------------------------------------------------------------- Gemma Scope


def _load_gemma_scope(folder: pathlib.Path, dtype_name: str | None) -> SAE:
  wfile = str(folder / GEMMA_SCOPE_PARAMS)
  m = _GEMMA_PATH_RE.search(folder.resolve().as_posix())
  if m is None:
    raise errors.SAEError(
        f'Gemma Scope folder {folder} must end in layer_<L>/width_<W>/'
        'average_l0_<N> (or .../canonical) to give the layer and width')
  layer, width = int(m.group(1)), m.group(2)
  if width not in GEMMA_SCOPE_WIDTHS:
    raise errors.SAEError(
        f'Gemma Scope width {width!r} in {folder} is unknown; expected one of '
        f'{", ".join(GEMMA_SCOPE_WIDTHS)}')
  d_sae = GEMMA_SCOPE_WIDTHS[width]
  try:
    with np.load(wfile) as npz:
      raw = {name: np.asarray(npz[name]) for name in npz.files}
  except Exception as e:  # numpy raises many types for corrupt archives.
    raise errors.SAEError(f'cannot read {wfile}: {_one_line(e)}') from e
  tensors = {}
  for name, value in raw.items():
    key = 'W_' + name[2:] if name.startswith('w_') else name
    if key in tensors:
      raise errors.SAEError(f'{wfile} holds both {key} and {name}')
    tensors[key] = value
  _check_keys(tensors, ['W_enc', 'W_dec', 'b_enc', 'b_dec', 'threshold'],
              ['scaling_factor'], wfile)
  if tensors['W_enc'].ndim != 2:
    raise errors.SAEError(
        f'{wfile} tensor W_enc has shape {list(tensors["W_enc"].shape)}, '
        'expected [d_model, d_sae]')
  d_in = tensors['W_enc'].shape[0]
  _check_shapes(tensors, d_in, d_sae, wfile)
  _check_finite(tensors, wfile)
  arrays = {name: tensors[name].astype(np.float32) for name in tensors}
  if 'scaling_factor' in arrays:
    arrays['W_dec'] = arrays['W_dec'] * arrays.pop('scaling_factor')[:, None]
  file_dtype = _dtype_name(tensors['W_enc'].dtype, wfile)
  model_name = _GEMMA2_BY_D_MODEL.get(d_in, '')
  if model_name and _GEMMA_SCOPE_IT_RE.search(folder.resolve().as_posix()):
    model_name += '-it'
  return _make_sae(
      arrays, dtype_name or file_dtype, architecture='jumprelu', k=None,
      apply_b_dec_to_input=False, rescale_acts_by_decoder_norm=False,
      site=sites.RESID_POST, layer=layer,
      hook_name=sites.hook_name(sites.RESID_POST, layer),
      model_name=model_name, neuronpedia_id=None)


# --------------------------------------------------------------- Llama Scope


def _load_llama_scope(folder: pathlib.Path, dtype_name: str | None) -> SAE:
  where = str(folder / LLAMA_SCOPE_HPARAMS)
  hp = _read_json(folder / LLAMA_SCOPE_HPARAMS)
  d_model, d_sae = _cfg_int(hp, 'd_model', where), _cfg_int(hp, 'd_sae', where)
  hook = hp.get('hook_point_in')
  if not isinstance(hook, str):
    raise errors.SAEError(f'{where} has no hook_point_in')
  if hp.get('hook_point_out', hook) != hook:
    raise errors.SAEError(
        f'{where} reads {hook} but writes {hp["hook_point_out"]} (a '
        'transcoder); only SAEs with hook_point_in == hook_point_out load')
  site, layer = _parse_hook(hook, where)
  if hp.get('act_fn') != 'jumprelu':
    raise errors.SAEError(
        f'{where} act_fn {hp.get("act_fn")!r} is not supported; expected '
        "'jumprelu'")
  if 'sparsity_include_decoder_norm' not in hp:
    raise errors.SAEError(f'{where} has no sparsity_include_decoder_norm')
  theta = hp.get('jump_relu_threshold')
  if not isinstance(theta, (int, float)) or not math.isfinite(theta) or (
      theta < 0):
    raise errors.SAEError(
        f'{where} jump_relu_threshold {theta!r} is not a finite number >= 0')
  s_in = s_out = 1.0
  norm = hp.get('norm_activation')
  if norm == 'dataset-wise':
    avg = hp.get('dataset_average_activation_norm')
    if not isinstance(avg, dict) or 'in' not in avg:
      raise errors.SAEError(
          f'{where} norm_activation dataset-wise needs '
          'dataset_average_activation_norm.in')
    n_in = _positive_finite(avg['in'], 'dataset_average_activation_norm.in',
                            where)
    n_out = _positive_finite(avg.get('out', n_in),
                             'dataset_average_activation_norm.out', where)
    s_in, s_out = math.sqrt(d_model) / n_in, math.sqrt(d_model) / n_out
  elif norm != 'inference':
    raise errors.SAEError(
        f'{where} norm_activation {norm!r} cannot be folded into the '
        "weights; supported: 'dataset-wise', 'inference'")
  use_bias = bool(hp.get('use_decoder_bias', True))
  pre_bias = bool(hp.get('apply_decoder_bias_to_pre_encoder', False))
  if pre_bias and use_bias and s_in != s_out:
    raise errors.SAEError(
        f'{where} applies the decoder bias before the encoder with different '
        'in/out dataset norms, which cannot be folded into the weights')

  wfile = str(folder / LLAMA_SCOPE_WEIGHTS)
  tensors = _read_safetensors(folder / LLAMA_SCOPE_WEIGHTS)
  required = ['encoder.weight', 'encoder.bias', 'decoder.weight']
  if use_bias:
    required.append('decoder.bias')
  _check_keys(tensors, required, [], wfile)
  expected = {'encoder.weight': (d_sae, d_model), 'encoder.bias': (d_sae,),
              'decoder.weight': (d_model, d_sae), 'decoder.bias': (d_model,)}
  for name, shape in expected.items():
    if name in tensors:
      _check_shape(name, tensors[name], shape, wfile)
  _check_finite(tensors, wfile)
  enc = tensors['encoder.weight'].astype(np.float32)
  dec = tensors['decoder.weight'].astype(np.float32)
  b_dec = tensors.get('decoder.bias', np.zeros((d_model,), np.float32))
  W_enc, W_dec, b_dec = fold_input_scaling(enc.T, dec.T, b_dec, s_in, s_out)

  theta_n = np.float32(theta * s_in)
  threshold = np.full((d_sae,), theta_n, np.float32)
  if hp['sparsity_include_decoder_norm']:
    norms = np.sqrt(np.einsum('DA,DA->A', dec, dec))
    safe = np.where(norms > 0, norms, 1.0)
    threshold = np.where(norms > 0, theta_n / safe,
                         np.finfo(np.float32).max).astype(np.float32)
  arrays = {'W_enc': W_enc, 'b_enc': tensors['encoder.bias'], 'W_dec': W_dec,
            'b_dec': b_dec, 'threshold': threshold}
  file_dtype = _dtype_name(hp.get('dtype', tensors['encoder.weight'].dtype),
                           f'{where} dtype')
  return _make_sae(
      arrays, dtype_name or file_dtype, architecture='jumprelu', k=None,
      apply_b_dec_to_input=pre_bias and use_bias,
      rescale_acts_by_decoder_norm=False, site=site, layer=layer,
      hook_name=hook, model_name=LLAMA_SCOPE_MODEL_NAME, neuronpedia_id=None)


# ------------------------------------------------------------------- helpers


def _make_sae(arrays: dict[str, np.ndarray], dtype_name: str, **static) -> SAE:
  """Casts float32 numpy arrays to `dtype_name` (threshold stays float32)."""
  np_dtype = jnp.dtype(dtype_name)

  def cast(name):
    return jnp.asarray(np.asarray(arrays[name], np.float32).astype(np_dtype))

  threshold = None
  if static['architecture'] == 'jumprelu':
    threshold = jnp.asarray(np.asarray(arrays['threshold'], np.float32))
  return SAE(W_enc=cast('W_enc'), b_enc=cast('b_enc'), W_dec=cast('W_dec'),
             b_dec=cast('b_dec'), threshold=threshold, dtype=dtype_name,
             **static)


def _one_line(e: BaseException | str) -> str:
  text = e if isinstance(e, str) else f'{type(e).__name__}: {e}'
  return ' '.join(text.split())


def _read_json(file: pathlib.Path) -> dict[str, Any]:
  try:
    data = json.loads(file.read_text())
  except (OSError, ValueError) as e:
    raise errors.SAEError(f'cannot read {file}: {_one_line(e)}') from e
  if not isinstance(data, dict):
    raise errors.SAEError(f'{file} does not hold a JSON object')
  return data


def _read_safetensors(file: pathlib.Path) -> dict[str, np.ndarray]:
  try:
    return dict(st_numpy.load_file(str(file)))
  except Exception as e:  # safetensors raises its own error types.
    raise errors.SAEError(f'cannot read {file}: {_one_line(e)}') from e


def _check_keys(tensors: dict[str, np.ndarray], required: list[str],
                optional: list[str], where: str) -> None:
  missing = [k for k in required if k not in tensors]
  extra = sorted(k for k in tensors if k not in required and k not in optional)
  if missing:
    raise errors.SAEError(
        f'{where} lacks tensor(s) {", ".join(missing)}; found '
        f'{", ".join(sorted(tensors)) or "none"}')
  if extra:
    raise errors.SAEError(
        f'{where} has unexpected tensor(s) {", ".join(extra)}; expected '
        f'{", ".join(required + optional)}')


def _check_shape(name: str, value: np.ndarray, shape: tuple[int, ...],
                 where: str) -> None:
  if tuple(value.shape) != tuple(shape):
    raise errors.SAEError(
        f'{where} tensor {name} has shape {list(value.shape)}, expected '
        f'{list(shape)} from the config')


def _check_shapes(tensors: dict[str, np.ndarray], d_in: int, d_sae: int,
                  where: str) -> None:
  expected = {'W_enc': (d_in, d_sae), 'W_dec': (d_sae, d_in),
              'b_enc': (d_sae,), 'b_dec': (d_in,), 'threshold': (d_sae,),
              'scaling_factor': (d_sae,)}
  for name, shape in expected.items():
    if name in tensors:
      _check_shape(name, tensors[name], shape, where)


def _check_finite(tensors: dict[str, np.ndarray], where: str) -> None:
  for name in sorted(tensors):
    value = np.asarray(tensors[name], np.float32)
    bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
    if bad:
      raise errors.SAEError(
          f'{where} tensor {name} has {bad} NaN/Inf value(s); the file is '
          'corrupt')


def _cfg_int(cfg: dict[str, Any], key: str, where: str) -> int:
  value = cfg.get(key)
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise errors.SAEError(f'{where} field {key} is {value!r}, expected an '
                          'integer >= 1')
  return value


def _positive_finite(value: Any, name: str, where: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      math.isfinite(value) and value > 0):
    raise errors.SAEError(f'{where}: {name} {value!r} is not a finite number '
                          '> 0')
  return float(value)


def _dtype_name(dtype: Any, where: str) -> str:
  """Normalises 'float32', 'torch.bfloat16', jnp.bfloat16, np.float16, ..."""
  try:
    name = jnp.dtype(dtype).name
  except TypeError:
    try:
      name = jnp.dtype(str(dtype).removeprefix('torch.')).name
    except TypeError as e:
      raise errors.SAEError(f'{where}: unknown dtype {dtype!r}') from e
  if name not in _DTYPES:
    raise errors.SAEError(
        f'{where}: dtype {name!r} is not a float type; use one of '
        f'{", ".join(_DTYPES)}')
  return name


def _parse_hook(hook: str, where: str) -> tuple[str, int]:
  try:
    return sites.parse_hook_name(hook)
  except errors.ConfigError as e:
    raise errors.SAEError(f'{where}: {_one_line(str(e))}') from e


def _version_tuple(version: str) -> tuple[int, ...]:
  parts = re.findall(r'\d+', version.split('-')[0])
  return tuple(int(p) for p in parts[:3])
