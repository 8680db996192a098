"""One config for the Gemma-2 / Llama-3.x decoder family.

The two families differ only through flags on `ModelConfig` (there is no class
per model). `from_hf_config` reads a transformers `config.json` dict, written by
transformers 4.x (`rope_theta` + `rope_scaling`, no `layer_types`) or 5.x
(`rope_parameters`, `layer_types`).

Config policy: accept what carries no math, refuse what does and is not
implemented. Each field is decided by what it does (`field_kind`):

- implemented: math fields the port parses into `ModelConfig` (sizes, norms,
  activation, RoPE, softcaps, windows, tying); unsupported values raise.
- fixed: math fields the port implements at one value only (`attention_bias`,
  `mlp_bias`, `is_causal`, `partial_rotary_factor`, `rope_interleaved`,
  `quantization_config`, ...); any other value raises.
- metadata, by rule rather than by spelling: `_`-prefixed names,
  `*_token_id(s)`, names and labels, `*_version`, dtype, anything about the
  cache, initialisation, dropout and `pretraining_tp`, output flags,
  implementation selectors, and every generation setting that
  `transformers.GenerationConfig` knows. Accepted with any value (bos/eos/pad
  and `architectures` are still read and checked).
- other: accepted when transformers' own config class for the family
  (`Gemma2Config` / `LlamaConfig`) does not declare it, since then the modeling
  code parity is measured against does not read it (SmolLM2's
  `is_llama_config`; the few undeclared fields that transformers reads on
  every architecture, such as `is_causal` or `per_layer_config`, are fixed
  fields); refused when it does, since its effect is unknown here.
  tests/models/test_config_policy.py checks that every field those classes
  declare is classified, so a new transformers field fails a test rather than
  being accepted silently.

Every refusal is a one-line `ConfigError` naming the field and its value.
Families other than Gemma-2 and Llama (Gemma-3 included) are refused by
`model_type`.
"""

import dataclasses
import functools
import inspect
import json
import math
from typing import Any, Callable, Literal

from refusal_jax import errors

LayerType = Literal['full', 'sliding']


@dataclasses.dataclass(frozen=True, kw_only=True)
class RopeScaling:
  """Llama-3 ("llama3") RoPE frequency scaling.

  Attributes:
    factor: divisor applied to low frequencies.
    low_freq_factor: wavelengths above original_max_position_embeddings /
      low_freq_factor are divided by `factor`.
    high_freq_factor: wavelengths below original_max_position_embeddings /
      high_freq_factor are kept; in between they are interpolated.
    original_max_position_embeddings: the pre-training context length.
  """
  factor: float
  low_freq_factor: float
  high_freq_factor: float
  original_max_position_embeddings: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """Architecture of one decoder of the Gemma-2 / Llama-3.x family.

  Attributes:
    family: 'gemma2' or 'llama'; used for HF export and chat formatting only,
      never for numerics (the flags below decide those).
    vocab_size: V.
    d_model: D, residual stream width.
    num_layers: L.
    num_heads: N, query heads.
    num_kv_heads: K, key/value heads (N % K == 0; K == N is MHA, K == 1 MQA).
    head_dim: H.
    mlp_dim: F, gated MLP hidden width.
    mlp_activation: 'gelu_tanh' (Gemma GeGLU, tanh-approximate gelu) or
      'silu' (Llama SwiGLU).
    norm_eps: RMSNorm epsilon.
    norm_unit_offset: RMSNorm scales by (1 + w) (Gemma) instead of w (Llama).
    embed_scale: multiply embeddings by sqrt(d_model) cast to the activation
      dtype (Gemma).
    post_norms: extra RMSNorms after attention and after the MLP, before the
      residual add (Gemma-2's post_attention / post_feedforward norms).
    attn_softcap: attention logits become cap * tanh(logits / cap); None = off.
    final_softcap: the same for the output logits; None = off.
    query_scale: multiplier on q.k (Gemma-2: query_pre_attn_scalar ** -0.5;
      Llama: head_dim ** -0.5).
    layer_types: per layer, 'full' causal or 'sliding' window attention.
    sliding_window: window size W for sliding layers: query at slot i sees key
      slots j with i - W < j <= i.
    rope_theta: RoPE base.
    rope_scaling: llama3 scaling, or None for plain RoPE.
    tie_embeddings: the output head is the transposed embedding matrix.
    max_position_embeddings: context length the checkpoint declares.
    bos_token_id: BOS id (None if the checkpoint declares none).
    eos_token_ids: ids that end generation.
    pad_token_id: padding id (None if the checkpoint declares none).
  """
  family: Literal['gemma2', 'llama']
  vocab_size: int
  d_model: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  mlp_activation: Literal['gelu_tanh', 'silu']
  norm_eps: float
  norm_unit_offset: bool
  embed_scale: bool
  post_norms: bool
  attn_softcap: float | None
  final_softcap: float | None
  query_scale: float
  layer_types: tuple[LayerType, ...]
  sliding_window: int | None
  rope_theta: float
  rope_scaling: RopeScaling | None
  tie_embeddings: bool
  max_position_embeddings: int
  bos_token_id: int | None = None
  eos_token_ids: tuple[int, ...] = ()
  pad_token_id: int | None = None

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise errors.ConfigError(
          f'num_attention_heads {self.num_heads} is not a multiple of '
          f'num_key_value_heads {self.num_kv_heads}')
    if self.head_dim % 2:
      raise errors.ConfigError(
          f'head_dim {self.head_dim} is odd; rotary embeddings need an even '
          'head_dim')
    if len(self.layer_types) != self.num_layers:
      raise errors.ConfigError(
          f'layer_types has {len(self.layer_types)} entries for '
          f'{self.num_layers} layers')
    if 'sliding' in self.layer_types and not self.sliding_window:
      raise errors.ConfigError('sliding layers need a positive sliding_window')

  # ---------------------------------------------------------------- presets
  @classmethod
  def gemma2(cls, *, vocab_size, d_model, num_layers, num_heads, num_kv_heads,
             head_dim, mlp_dim, query_pre_attn_scalar=None,
             sliding_window=4096, attn_softcap=50.0, final_softcap=30.0,
             max_position_embeddings=8192, **overrides) -> 'ModelConfig':
    """A Gemma-2 architecture (local-first alternating attention, tied head)."""
    scalar = query_pre_attn_scalar if query_pre_attn_scalar else head_dim
    kw = dict(
        family='gemma2', vocab_size=vocab_size, d_model=d_model,
        num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_dim=head_dim, mlp_dim=mlp_dim, mlp_activation='gelu_tanh',
        norm_eps=1e-6, norm_unit_offset=True, embed_scale=True,
        post_norms=True, attn_softcap=attn_softcap,
        final_softcap=final_softcap, query_scale=scalar ** -0.5,
        layer_types=tuple('sliding' if i % 2 == 0 else 'full'
                          for i in range(num_layers)),
        sliding_window=sliding_window, rope_theta=10000.0, rope_scaling=None,
        tie_embeddings=True, max_position_embeddings=max_position_embeddings,
        bos_token_id=2, eos_token_ids=(1, 107), pad_token_id=0)
    kw.update(overrides)
    return cls(**kw)

  @classmethod
  def llama(cls, *, vocab_size, d_model, num_layers, num_heads, num_kv_heads,
            mlp_dim, head_dim=None, rope_theta=500000.0,
            rope_scaling: RopeScaling | None = None, tie_embeddings=False,
            max_position_embeddings=131072, **overrides) -> 'ModelConfig':
    """A Llama-3.x architecture (SwiGLU, GQA, optional llama3 RoPE scaling)."""
    head_dim = head_dim or d_model // num_heads
    kw = dict(
        family='llama', vocab_size=vocab_size, d_model=d_model,
        num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_dim=head_dim, mlp_dim=mlp_dim, mlp_activation='silu',
        norm_eps=1e-5, norm_unit_offset=False, embed_scale=False,
        post_norms=False, attn_softcap=None, final_softcap=None,
        query_scale=head_dim ** -0.5, layer_types=('full',) * num_layers,
        sliding_window=None, rope_theta=rope_theta, rope_scaling=rope_scaling,
        tie_embeddings=tie_embeddings,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=128000, eos_token_ids=(128001, 128008, 128009),
        pad_token_id=None)
    kw.update(overrides)
    return cls(**kw)

  @classmethod
  def gemma2_2b(cls) -> 'ModelConfig':
    """google/gemma-2-2b(-it)."""
    return cls.gemma2(vocab_size=256000, d_model=2304, num_layers=26,
                      num_heads=8, num_kv_heads=4, head_dim=256, mlp_dim=9216,
                      query_pre_attn_scalar=256)

  @classmethod
  def gemma2_9b(cls) -> 'ModelConfig':
    """google/gemma-2-9b(-it)."""
    return cls.gemma2(vocab_size=256000, d_model=3584, num_layers=42,
                      num_heads=16, num_kv_heads=8, head_dim=256,
                      mlp_dim=14336, query_pre_attn_scalar=256)

  @classmethod
  def llama31_8b(cls) -> 'ModelConfig':
    """meta-llama/Llama-3.1-8B(-Instruct)."""
    return cls.llama(vocab_size=128256, d_model=4096, num_layers=32,
                     num_heads=32, num_kv_heads=8, mlp_dim=14336,
                     rope_scaling=RopeScaling(
                         factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                         original_max_position_embeddings=8192))

  @classmethod
  def preset(cls, name: str) -> 'ModelConfig':
    """Full-size presets by name: gemma2_2b, gemma2_9b, llama31_8b."""
    presets = {'gemma2_2b': cls.gemma2_2b, 'gemma2_9b': cls.gemma2_9b,
               'llama31_8b': cls.llama31_8b}
    if name not in presets:
      raise errors.ConfigError(
          f'unknown preset {name!r}; expected one of {sorted(presets)}')
    return presets[name]()

  @property
  def group_size(self) -> int:
    """G = N // K, query heads per key/value head."""
    return self.num_heads // self.num_kv_heads


# --------------------------------------------------------------------------
# transformers config.json -> ModelConfig: the field policy

_CAUSAL_LM = {'gemma2': 'Gemma2ForCausalLM', 'llama': 'LlamaForCausalLM'}
_TRANSFORMERS_CONFIG = {'gemma2': 'Gemma2Config', 'llama': 'LlamaConfig'}

# Families that are easy to mistake for a supported one, and why they differ.
_GEMMA3 = ('Gemma-3 is not Gemma-2 (QK-norm, a second RoPE base for local '
           'layers, 5:1 local/global layers)')
_NOT_SUPPORTED = {'gemma3': _GEMMA3, 'gemma3_text': _GEMMA3}

# Math fields the port implements; from_hf_config parses each one.
_IMPLEMENTED = {
    'gemma2': frozenset({
        'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
        'num_attention_heads', 'num_key_value_heads', 'head_dim',
        'hidden_activation', 'hidden_act', 'rms_norm_eps', 'rope_theta',
        'rope_parameters', 'rope_scaling', 'query_pre_attn_scalar',
        'sliding_window', 'sliding_window_size', 'layer_types',
        'attn_logit_softcapping', 'final_logit_softcapping',
        'tie_word_embeddings'}),
    'llama': frozenset({
        'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
        'num_attention_heads', 'num_key_value_heads', 'head_dim', 'hidden_act',
        'rms_norm_eps', 'rope_theta', 'rope_parameters', 'rope_scaling',
        'tie_word_embeddings', 'layer_types'}),
}

# Math fields the port implements at one value only: accepted at these values
# (None stands for null or absent), refused at any other.
_FIXED = {
    # The port's projections have no bias.
    'attention_bias': (None, False),
    'mlp_bias': (None, False),
    # Causal self-attention only. transformers' mask code reads is_causal and
    # attention_chunk_size on any architecture.
    'is_causal': (None, True),
    'use_bidirectional_attention': (None, False),
    'attention_chunk_size': (None,),
    'use_sliding_window': (None, False),
    'add_cross_attention': (None, False),
    'cross_attention_hidden_size': (None,),
    'is_encoder_decoder': (None, False),
    'tie_encoder_decoder': (None, False),
    # RoPE rotates all of each head, in halves (SmolLM2 writes
    # rope_interleaved: false).
    'partial_rotary_factor': (None, 1.0),
    'rope_interleaved': (None, False),
    # Every layer whole and alike, weights stored dense. transformers applies
    # per_layer_config and kv_sharing_modes on any architecture.
    'pruned_heads': (None, {}),
    'quantization_config': (None,),
    'per_layer_config': (None, {}),
    'kv_sharing_modes': (None,),
}

# Gemma-2 math that transformers' Llama would ignore; a Llama checkpoint that
# sets it was trained with math that neither implementation runs.
_FIXED_LLAMA = {
    'sliding_window': (None,),
    'sliding_window_size': (None,),
    'attn_logit_softcapping': (None,),
    'final_logit_softcapping': (None,),
    'query_pre_attn_scalar': (None,),
}

_FIX_HINTS = {
    'quantization_config': '; dequantize the weights first',
}

_NAMES = frozenset({
    'architectures', 'model_type', 'id2label', 'label2id', 'num_labels',
    'finetuning_task', 'tokenizer_class', 'prefix', 'problem_type',
    'task_specific_params'})

# Fields that carry no math, by class. Each predicate says why.
_METADATA: tuple[tuple[str, Callable[[str], bool]], ...] = (
    # Private bookkeeping of transformers and other tools (_name_or_path,
    # _commit_hash, _attn_implementation_autoset, ...).
    ('private', lambda k: k.startswith('_')),
    # Vocabulary indices, not weights. bos/eos/pad are still read and checked.
    ('token id', lambda k: k.endswith(('_token_id', '_token_ids'))),
    # Names, labels and tokenizer hints; classification labels feed no
    # causal-LM head. architectures is still checked against the family.
    ('name', lambda k: k in _NAMES or k.endswith('name_or_path')),
    # Which library version wrote the file.
    ('version', lambda k: k.endswith('_version')),
    # Storage dtype; the caller chooses the compute dtype.
    ('dtype', lambda k: k in ('torch_dtype', 'dtype')),
    # How past keys and values are stored, not what attention computes.
    ('cache', lambda k: 'cache' in k),
    # Weight initialisation, used only when training from scratch.
    ('initialisation', lambda k: k in ('initializer_range',
                                       'initializer_factor') or
     k.startswith('init_')),
    # Training only: dropout is off at inference, and pretraining_tp > 1 only
    # split transformers 4's matmuls into slices (same math).
    ('training', lambda k: 'dropout' in k or k == 'pretraining_tp'),
    # What a forward call returns, not what it computes.
    ('output', lambda k: k.startswith(('output_', 'return_dict')) or
     k in ('use_return_dict', 'torchscript')),
    # The declared context length (still read); llama3 RoPE scaling takes its
    # own original_max_position_embeddings.
    ('context length', lambda k: k == 'max_position_embeddings'),
    # Kernel choice and memory chunking of the position-wise MLP: same math.
    ('implementation', lambda k: k.endswith('_implementation') or
     k == 'chunk_size_feed_forward'),
    # A role flag of encoder-decoder setups; these decoders never read it.
    ('role', lambda k: k == 'is_decoder'),
)


@functools.cache
def _generation_fields() -> frozenset[str]:
  """Generation settings (sampling, lengths, ...): they act after the logits."""
  import transformers  # pylint: disable=g-import-not-at-top
  return frozenset(transformers.GenerationConfig().to_dict())


@functools.cache
def transformers_fields(family: str) -> frozenset[str]:
  """The fields that transformers' config class for `family` declares.

  Args:
    family: 'gemma2' or 'llama'.

  Returns:
    Its __init__ parameters, its dataclass fields (transformers 5) and the
    keys of its default to_dict().
  """
  import transformers  # pylint: disable=g-import-not-at-top
  cls = getattr(transformers, _TRANSFORMERS_CONFIG[family])
  skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
  names = {p.name for p in inspect.signature(cls.__init__).parameters.values()
           if p.kind not in skip and p.name != 'self'}
  if dataclasses.is_dataclass(cls):
    names |= {f.name for f in dataclasses.fields(cls)}
  return frozenset(names | set(cls().to_dict()))


def _fixed(family: str) -> dict[str, tuple[Any, ...]]:
  return {**_FIXED, **(_FIXED_LLAMA if family == 'llama' else {})}


def field_kind(name: str, family: str) -> str:
  """How the config policy treats field `name` of a `family` config.json.

  Args:
    name: a config.json key.
    family: 'gemma2' or 'llama'.

  Returns:
    'implemented' (parsed into ModelConfig), 'fixed' (accepted only at the
    value the port implements), 'metadata' (carries no math: accepted) or
    'other' (refused when transformers' config class for the family declares
    it, since its modeling code may read it; accepted otherwise, since that
    code cannot).
  """
  if name in _IMPLEMENTED[family]:
    return 'implemented'
  if name in _fixed(family):
    return 'fixed'
  if any(rule(name) for _, rule in _METADATA):
    return 'metadata'
  if name in _generation_fields():
    return 'metadata'
  return 'other'


def _show(value: Any) -> str:
  """repr(value) cut to one short line."""
  text = repr(value)
  return text if len(text) <= 80 else text[:77] + '...'


def _check_field(name: str, value: Any, family: str) -> None:
  """Raises ConfigError when field `name`=`value` may change the math."""
  kind = field_kind(name, family)
  if kind == 'fixed':
    accepted = _fixed(family)[name]
    if not any(value == a and isinstance(value, bool) == isinstance(a, bool)
               for a in accepted):
      shown = ', '.join('absent' if a is None else json.dumps(a)
                        for a in accepted)
      raise errors.ConfigError(
          f'config field {name}={_show(value)} is not implemented by the '
          f'{family} port (accepted: {shown}){_FIX_HINTS.get(name, "")}')
  elif kind == 'other' and name in transformers_fields(family):
    raise errors.ConfigError(
        f'config field {name}={_show(value)} is declared by transformers.'
        f'{_TRANSFORMERS_CONFIG[family]}, so its modeling code may read it, '
        f'but the {family} port does not implement it')


def _family(d: dict[str, Any]) -> str:
  """The supported family named by model_type and architectures."""
  model_type = d.get('model_type')
  if not isinstance(model_type, str) or model_type not in _CAUSAL_LM:
    why = isinstance(model_type, str) and _NOT_SUPPORTED.get(model_type)
    raise errors.ConfigError(
        f'config field model_type={_show(model_type)} is not supported'
        f'{": " + why if why else ""} (supported: {sorted(_CAUSAL_LM)})')
  arch = d.get('architectures') or []
  want = _CAUSAL_LM[model_type]
  if arch and arch != [want]:
    raise errors.ConfigError(
        f'config field architectures={_show(arch)} is not supported (expected '
        f'[{want!r}])')
  return model_type


def _require(d: dict[str, Any], key: str) -> Any:
  if d.get(key) is None:
    raise errors.ConfigError(f'config.json has no {key!r}, which this port needs')
  return d[key]


def _int(d: dict[str, Any], key: str, default=None, minimum: int = 1) -> int:
  """A positive integer field (or `default` when absent/null)."""
  value = d.get(key)
  if value is None:
    if default is None:
      raise errors.ConfigError(
          f'config.json has no {key!r}, which this port needs')
    return default
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise errors.ConfigError(
        f'config field {key}={value!r} must be an integer >= {minimum}')
  return value


def _bool(d: dict[str, Any], key: str, default: bool) -> bool:
  value = d.get(key)
  if value is None:
    return default
  if not isinstance(value, bool):
    raise errors.ConfigError(f'config field {key}={value!r} must be true or '
                             'false')
  return value


def _float(d: dict[str, Any], key: str, default=None, positive=True):
  """A real-number field (or `default` when absent/null)."""
  value = d.get(key)
  if value is None:
    return default
  if isinstance(value, bool) or not isinstance(value, (int, float)) or (
      positive and not value > 0):
    raise errors.ConfigError(
        f'config field {key}={value!r} must be a {"positive " * positive}'
        'number')
  return float(value)


def _rope(d: dict[str, Any]) -> tuple[float, RopeScaling | None]:
  """Reads RoPE base and scaling from either config.json generation."""
  if d.get('rope_parameters') is not None and (
      d.get('rope_scaling') is not None):
    # transformers 5 lets rope_scaling override rope_parameters: accept the
    # pair only when both spell the same RoPE.
    new = _rope({**d, 'rope_scaling': None})
    old = _rope({**d, 'rope_parameters': None})
    if new != old:
      raise errors.ConfigError(
          f"config field rope_scaling={_show(d['rope_scaling'])} disagrees "
          f"with rope_parameters={_show(d['rope_parameters'])}; keep one")
    return new
  params = d.get('rope_parameters')
  if isinstance(params, dict) and 'rope_theta' not in params and all(
      isinstance(v, dict) for v in params.values()):
    raise errors.ConfigError(
        'config field rope_parameters is per layer type; not supported')
  if params is not None and not isinstance(params, dict):
    raise errors.ConfigError(f'config field rope_parameters={params!r} must be '
                             'an object')
  if d.get('rope_scaling') is not None and not isinstance(
      d['rope_scaling'], dict):
    raise errors.ConfigError(
        f"config field rope_scaling={d['rope_scaling']!r} must be an object")
  if params is not None:  # transformers 5.x
    theta = params.get('rope_theta', d.get('rope_theta'))
    scaling = dict(params)
    field = 'rope_parameters'
  else:  # transformers 4.x
    theta = d.get('rope_theta', 10000.0)
    scaling = dict(d.get('rope_scaling') or {})
    field = 'rope_scaling'
  theta = _float({'rope_theta': theta}, 'rope_theta')
  if theta is None:
    raise errors.ConfigError('config.json has no rope_theta')
  rope_type = scaling.pop('rope_type', None) or scaling.pop('type', None)
  scaling.pop('type', None)
  scaling.pop('rope_theta', None)
  if rope_type in (None, 'default'):
    leftover = {k: v for k, v in scaling.items() if v not in (None, 1.0)}
    if leftover:
      raise errors.ConfigError(
          f'config field {field} has unsupported entries {sorted(leftover)}')
    return theta, None
  if rope_type != 'llama3':
    raise errors.ConfigError(
        f'config field {field}.rope_type={rope_type!r} is not supported '
        "(supported: 'default', 'llama3')")
  known = {'factor', 'low_freq_factor', 'high_freq_factor',
           'original_max_position_embeddings'}
  unknown = {k for k, v in scaling.items()
             if k not in known and v not in (None, 1.0)}
  missing = known - set(scaling)
  if unknown or missing:
    raise errors.ConfigError(
        f'config field {field} (llama3): unsupported {sorted(unknown)}, '
        f'missing {sorted(missing)}')
  low = _float(scaling, 'low_freq_factor')
  high = _float(scaling, 'high_freq_factor')
  if not high > low:
    raise errors.ConfigError(
        f'config field {field}: high_freq_factor {high} must exceed '
        f'low_freq_factor {low}')
  return theta, RopeScaling(
      factor=_float(scaling, 'factor'), low_freq_factor=low,
      high_freq_factor=high,
      original_max_position_embeddings=_int(
          scaling, 'original_max_position_embeddings'))


def _layer_types(d: dict[str, Any], family: str, n: int) -> tuple[str, ...]:
  raw = d.get('layer_types')
  if raw is not None and not isinstance(raw, list):
    raise errors.ConfigError(f'config field layer_types={raw!r} must be a list')
  if raw is None:  # transformers 4.x Gemma-2: local attention on even layers
    return tuple('sliding' if (family == 'gemma2' and i % 2 == 0) else 'full'
                 for i in range(n))
  names = {'sliding_attention': 'sliding', 'full_attention': 'full'}
  bad = [t for t in raw if not isinstance(t, str) or t not in names or
         (family == 'llama' and t != 'full_attention')]
  if bad or len(raw) != n:
    raise errors.ConfigError(
        f'config field layer_types={raw!r} is not supported for {family} '
        f'with {n} layers')
  return tuple(names[t] for t in raw)


def from_hf_config(d: dict[str, Any]) -> ModelConfig:
  """Builds a ModelConfig from a transformers config.json dict.

  Args:
    d: the parsed config.json of a Gemma2ForCausalLM or LlamaForCausalLM
      checkpoint, written by transformers 4.x or 5.x.

  Returns:
    The equivalent ModelConfig.

  Raises:
    errors.ConfigError: naming the first field whose value is not implemented.
  """
  family = _family(d)
  for key, value in d.items():
    _check_field(key, value, family)

  n_layers = _int(d, 'num_hidden_layers')
  n_heads = _int(d, 'num_attention_heads')
  d_model = _int(d, 'hidden_size')
  head_dim = _int(d, 'head_dim', default=d_model // n_heads)
  theta, scaling = _rope(d)
  token = lambda key: _int(d, key, default=-1, minimum=0)
  eos = d.get('eos_token_id')
  eos_list = eos if isinstance(eos, list) else ([] if eos is None else [eos])
  eos_ids = tuple(_int({'eos_token_id': e}, 'eos_token_id', minimum=0)
                  for e in eos_list)
  optional_id = lambda key: None if d.get(key) is None else token(key)
  common = dict(
      vocab_size=_int(d, 'vocab_size'), d_model=d_model,
      num_layers=n_layers, num_heads=n_heads,
      num_kv_heads=_int(d, 'num_key_value_heads', default=n_heads),
      head_dim=head_dim, mlp_dim=_int(d, 'intermediate_size'),
      rope_theta=theta, rope_scaling=scaling,
      layer_types=_layer_types(d, family, n_layers),
      bos_token_id=optional_id('bos_token_id'), eos_token_ids=eos_ids,
      pad_token_id=optional_id('pad_token_id'),
      max_position_embeddings=_int(d, 'max_position_embeddings', 8192),
  )
  if family == 'gemma2':
    act = d.get('hidden_activation') or d.get('hidden_act')
    if act not in ('gelu_pytorch_tanh', 'gelu_new'):
      raise errors.ConfigError(
          f'config field hidden_activation={act!r} is not supported '
          "(only 'gelu_pytorch_tanh')")
    if scaling is not None:
      raise errors.ConfigError(
          'config field rope_scaling is not supported for gemma2')
    if _bool(d, 'tie_word_embeddings', True) is not True:
      raise errors.ConfigError(
          'config field tie_word_embeddings=False is not supported for gemma2')
    window = (_int(d, 'sliding_window', 0, minimum=0) or
              _int(d, 'sliding_window_size', 0, minimum=0))
    scalar = _float(d, 'query_pre_attn_scalar', float(head_dim))
    return ModelConfig(
        family='gemma2', mlp_activation='gelu_tanh',
        norm_eps=_float(d, 'rms_norm_eps', 1e-6), norm_unit_offset=True,
        embed_scale=True, post_norms=True,
        attn_softcap=_float(d, 'attn_logit_softcapping'),
        final_softcap=_float(d, 'final_logit_softcapping'),
        query_scale=scalar ** -0.5,
        sliding_window=int(window) if window else None,
        tie_embeddings=True, **common)
  act = d.get('hidden_act', 'silu')
  if act != 'silu':
    raise errors.ConfigError(
        f"config field hidden_act={act!r} is not supported (only 'silu')")
  return ModelConfig(
      family='llama', mlp_activation='silu',
      norm_eps=_float(d, 'rms_norm_eps', 1e-6), norm_unit_offset=False,
      embed_scale=False, post_norms=False, attn_softcap=None,
      final_softcap=None, query_scale=head_dim ** -0.5, sliding_window=None,
      tie_embeddings=_bool(d, 'tie_word_embeddings', False), **common)


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
  """The transformers 5.x config.json dict for `cfg` (used for export)."""
  common = dict(
      vocab_size=cfg.vocab_size, hidden_size=cfg.d_model,
      intermediate_size=cfg.mlp_dim, num_hidden_layers=cfg.num_layers,
      num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
      head_dim=cfg.head_dim, rms_norm_eps=cfg.norm_eps,
      max_position_embeddings=cfg.max_position_embeddings,
      bos_token_id=cfg.bos_token_id,
      eos_token_id=(list(cfg.eos_token_ids) if len(cfg.eos_token_ids) > 1
                    else (cfg.eos_token_ids[0] if cfg.eos_token_ids else None)),
      pad_token_id=cfg.pad_token_id, tie_word_embeddings=cfg.tie_embeddings,
      attention_bias=False)
  rope = {'rope_type': 'default', 'rope_theta': cfg.rope_theta}
  if cfg.rope_scaling is not None:
    rope = {'rope_type': 'llama3', 'rope_theta': cfg.rope_theta,
            **dataclasses.asdict(cfg.rope_scaling)}
  if cfg.family == 'gemma2':
    scalar = cfg.query_scale ** -2
    if abs(scalar - round(scalar)) > 1e-6:
      raise errors.ConfigError(f'query_scale {cfg.query_scale} has no integer '
                               'query_pre_attn_scalar')
    return dict(
        model_type='gemma2', architectures=['Gemma2ForCausalLM'],
        hidden_activation='gelu_pytorch_tanh',
        query_pre_attn_scalar=int(round(scalar)),
        sliding_window=cfg.sliding_window,
        layer_types=[f'{t}_attention' for t in cfg.layer_types],
        attn_logit_softcapping=cfg.attn_softcap,
        final_logit_softcapping=cfg.final_softcap,
        rope_parameters=rope, **common)
  if not math.isclose(cfg.query_scale, cfg.head_dim ** -0.5):
    raise errors.ConfigError('llama export needs query_scale = head_dim**-0.5')
  return dict(model_type='llama', architectures=['LlamaForCausalLM'],
              hidden_act='silu', mlp_bias=False, rope_parameters=rope,
              **common)
