"""Low-rank adapters (LoRA) on the decoder's projection matrices.

An adapter is a plain pytree: {name: {'a': [R, I], 'b': [O, R]}} with one
entry per adapted matrix, `name` its transformers module name without the
'.weight' suffix (e.g. 'model.layers.3.self_attn.q_proj'), `a` and `b` in
the transformers [out, in] orientation (as PEFT stores `lora_A` / `lora_B`).
The adapted weight is

  W' = W + (alpha / R) * to_jax(b @ a)

with `to_jax` the checkpoint-to-port layout transform of that matrix
(checkpoints/hf_mapping.py), so a merged adapter changes exactly the matrices
a merged transformers checkpoint would. `b` starts at zero, so a fresh
adapter leaves the model unchanged.

Files: `save_adapter` writes `adapter_model.safetensors` with PEFT's key
names ('base_model.model.<name>.lora_A.weight' [R, I], '...lora_B.weight'
[O, R]) and `adapter_config.json` (rank, alpha, target modules, layers).

Axis letters: see refusal_jax/axes.py (R, O, I).
"""

import dataclasses
import json
import math
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from refusal_jax import atomic
from refusal_jax import errors
from refusal_jax.checkpoints import hf_mapping
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig

Adapter = dict[str, dict[str, jax.Array]]

# Module names that can carry an adapter, and the parameter path suffix of
# each in the port's parameter tree.
MODULES = {
    'q_proj': ('self_attn', 'q_proj'),
    'k_proj': ('self_attn', 'k_proj'),
    'v_proj': ('self_attn', 'v_proj'),
    'o_proj': ('self_attn', 'o_proj'),
    'gate_proj': ('mlp', 'gate_proj'),
    'up_proj': ('mlp', 'up_proj'),
    'down_proj': ('mlp', 'down_proj'),
}
CONFIG_FILE = 'adapter_config.json'
WEIGHTS_FILE = 'adapter_model.safetensors'
_PREFIX = 'base_model.model.'
_DTYPES = {'float32': np.float32, 'bfloat16': jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class LoraSpec:
  """Which matrices get an adapter, and its rank and scale.

  Attributes:
    rank: R.
    alpha: the update is scaled by alpha / rank.
    modules: module names from MODULES.
    layers: decoder layers adapted.
  """
  rank: int
  alpha: float
  modules: tuple[str, ...]
  layers: tuple[int, ...]

  @property
  def scale(self) -> float:
    return self.alpha / self.rank

  def check(self, config: ModelConfig) -> None:
    """Raises errors.ConfigError unless the spec fits `config`."""
    if self.rank < 1:
      raise errors.ConfigError(f'lora.rank must be >= 1, got {self.rank}')
    unknown = sorted(set(self.modules) - set(MODULES))
    if unknown or not self.modules:
      raise errors.ConfigError(
          f'lora.modules {list(self.modules)}: expected a non-empty subset of '
          f'{", ".join(MODULES)}')
    bad = [l for l in self.layers if not 0 <= l < config.num_layers]
    if bad or not self.layers:
      raise errors.ConfigError(
          f'lora.layers {list(self.layers)}: expected a non-empty subset of '
          f'[0, {config.num_layers})')

  def to_json(self) -> dict[str, Any]:
    """The PEFT-style adapter_config.json fields."""
    return {'peft_type': 'LORA', 'task_type': 'CAUSAL_LM', 'r': self.rank,
            'lora_alpha': self.alpha, 'target_modules': list(self.modules),
            'layers_to_transform': list(self.layers), 'bias': 'none',
            'fan_in_fan_out': False, 'lora_dropout': 0.0}

  @classmethod
  def from_json(cls, d: dict[str, Any]) -> 'LoraSpec':
    return cls(rank=int(d['r']), alpha=float(d['lora_alpha']),
               modules=tuple(d['target_modules']),
               layers=tuple(int(l) for l in d['layers_to_transform']))


def spec_from_config(lora, config: ModelConfig) -> LoraSpec:
  """LoraSpec from a config's `lora` block (layers None = all), checked."""
  layers = (range(config.num_layers) if lora.layers is None
            else lora.layers)
  spec = LoraSpec(rank=int(lora.rank), alpha=float(lora.alpha),
                  modules=tuple(lora.modules),
                  layers=tuple(int(l) for l in layers))
  spec.check(config)
  return spec


def targets(spec: LoraSpec, config: ModelConfig
            ) -> dict[str, tuple[tuple, hf_mapping.Entry]]:
  """{module name: (parameter path, checkpoint Entry)} of adapted matrices."""
  table = hf_mapping.param_table(config)
  out = {}
  for layer in spec.layers:
    for module in spec.modules:
      path = ('layers', layer) + MODULES[module]
      entry = table[path]
      out[entry.hf_key[:-len('.weight')]] = (path, entry)
  return out


def _hf_shape(entry: hf_mapping.Entry, shape: Sequence[int]
              ) -> tuple[int, int]:
  """[O, I] of a matrix whose port-layout shape is `shape`."""
  return entry.to_hf(np.zeros(shape, np.float32)).shape


def init_adapter(spec: LoraSpec, config: ModelConfig, seed: int) -> Adapter:
  """A fresh adapter: a ~ U(-1/sqrt(I), 1/sqrt(I)) (PEFT's init), b = 0.

  Args:
    spec: what to adapt.
    config: the architecture.
    seed: seed of `a`.

  Returns:
    The adapter, float32.
  """
  spec.check(config)
  abstract = dict(nnx.to_flat_state(transformer.abstract_params(config)))
  key = jax.random.key(seed)
  adapter = {}
  for i, (name, (path, entry)) in enumerate(
      sorted(targets(spec, config).items())):
    o, n_in = _hf_shape(entry, abstract[path].shape)
    bound = 1.0 / math.sqrt(n_in)
    adapter[name] = {
        'a': jax.random.uniform(jax.random.fold_in(key, i), (spec.rank, n_in),
                                jnp.float32, -bound, bound),
        'b': jnp.zeros((o, spec.rank), jnp.float32)}
  return adapter


def delta(adapter_entry: dict[str, jax.Array], entry: hf_mapping.Entry,
          scale: float) -> jax.Array:
  """scale * b @ a in the port's layout of the adapted matrix."""
  a = adapter_entry['a'].astype(jnp.float32)
  b = adapter_entry['b'].astype(jnp.float32)
  return entry.to_jax(jnp.einsum('OR,RI->OI', b, a) * scale)


def merge(params: transformer.Params, adapter: Adapter, spec: LoraSpec,
          config: ModelConfig) -> transformer.Params:
  """Parameters with every adapted matrix replaced by W + scale * b @ a.

  Pure and differentiable in `adapter`; the result has `params`' dtypes.

  Args:
    params: base parameters (nnx.State).
    adapter: the adapter (`init_adapter`, `load_adapter`).
    spec: its spec.
    config: the architecture.

  Returns:
    The merged parameters (nnx.State).

  Raises:
    errors.CheckpointError: the adapter's entries do not match the spec.
  """
  where = targets(spec, config)
  if set(where) != set(adapter):
    missing = sorted(set(where) - set(adapter))[:2]
    extra = sorted(set(adapter) - set(where))[:2]
    raise errors.CheckpointError(
        f'the adapter does not match its spec: missing {missing}, '
        f'unexpected {extra}')
  by_path = {path: (name, entry) for name, (path, entry) in where.items()}
  flat = []
  for path, var in nnx.to_flat_state(params):
    if path in by_path:
      name, entry = by_path[path]
      w = var[...]
      var = var.replace((w.astype(jnp.float32) + delta(
          adapter[name], entry, spec.scale)).astype(w.dtype))
    flat.append((path, var))
  return nnx.from_flat_state(flat)


def num_params(adapter: Adapter) -> int:
  """Number of adapter parameters."""
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(adapter))


def save_adapter(adapter: Adapter, spec: LoraSpec, path: str, *,
                 dtype: str = 'float32', extra: dict[str, Any] | None = None
                 ) -> str:
  """Writes the adapter folder atomically (safetensors + adapter_config.json).

  Args:
    adapter: the adapter.
    spec: its spec.
    path: the folder; replaced if it exists.
    dtype: 'float32' or 'bfloat16' storage.
    extra: more fields for adapter_config.json (e.g. the base model).

  Returns:
    The folder.

  Raises:
    errors.ConfigError: unknown dtype.
  """
  if dtype not in _DTYPES:
    raise errors.ConfigError(
        f'adapter dtype {dtype!r}: expected one of {", ".join(_DTYPES)}')
  tensors = {}
  for name, ab in adapter.items():
    for part, key in (('a', 'lora_A'), ('b', 'lora_B')):
      tensors[f'{_PREFIX}{name}.{key}.weight'] = np.ascontiguousarray(
          np.asarray(jnp.asarray(ab[part]).astype(_DTYPES[dtype])))
  with atomic.directory(path) as tmp:
    save_file(tensors, os.path.join(tmp, WEIGHTS_FILE),
              metadata={'format': 'pt'})
    with open(os.path.join(tmp, CONFIG_FILE), 'w') as f:
      json.dump(dict(spec.to_json(), **(extra or {})), f, indent=2,
                sort_keys=True)
  return os.path.abspath(path)


def load_adapter(path: str) -> tuple[Adapter, LoraSpec, dict[str, Any]]:
  """Reads a folder written by `save_adapter`.

  Returns:
    (adapter as float32 arrays, its spec, the whole adapter_config.json).

  Raises:
    errors.CheckpointError: missing or malformed files.
  """
  try:
    with open(os.path.join(path, CONFIG_FILE)) as f:
      meta = json.load(f)
    spec = LoraSpec.from_json(meta)
    tensors = load_file(os.path.join(path, WEIGHTS_FILE))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.CheckpointError(
        f'cannot read the adapter in {path}: {type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""}') from None
  adapter = {}
  for key, value in tensors.items():
    if not key.startswith(_PREFIX) or not key.endswith(
        ('.lora_A.weight', '.lora_B.weight')):
      raise errors.CheckpointError(
          f'unexpected tensor {key!r} in the adapter {path}')
    name, part = key[len(_PREFIX):].rsplit('.', 2)[:2]
    adapter.setdefault(name, {})['a' if part == 'lora_A' else 'b'] = (
        jnp.asarray(value, jnp.float32))
  return adapter, spec, meta
