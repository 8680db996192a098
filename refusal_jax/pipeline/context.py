"""Everything the stages share: model, SAEs, metric, and tokenized prompt sets.

Built once from the experiment config by `build_context`. Prompt sets come
from the prompt source `data.source` names (refusal_jax/data/sources.py):
the embedded organisms' generator (`data.source = 'organism'`), prompt
files (`data.source = 'files'`: .txt, .json, .jsonl or .csv, see
refusal_jax/data/prompts.py), or the built-in standard sets
(`data.source = 'advbench'` or 'donotanswer', with `data.harmful_test_source`
and `data.harmless_source`, see refusal_jax/data/datasets.py). Shipped
assets (an organism's checkpoint and SAEs, `config.organism`) are named by
refusal_jax/asset_paths.py; the pipeline imports no organism code.

Following Arditi et al., training and validation prompts are filtered so that
harmful ones are refused (refusal score > 0) and harmless ones are not (< 0),
when `data.filter` is set.

Token classes (`token_classes`): every real prompt token is BOS, another
chat-template token, or an instruction token; the hydra stage localises
features with them and the report breaks the SAE's reconstruction error down
by them. With `sae_skip_special_tokens`, every SAE edit and SAE statistic of
the run skips the tokenizer's special tokens (`Context.skip_ids`).

Features: with `config.saes`, the latents of several SAEs form one feature
space (`Context.space`, sae/space.py) and a feature is a (SAE, latent) pair
numbered in it; otherwise the space is the one SAE and a feature is its
latent. `feature_edits` and `feature_latents` take feature lists either way.
"""

import dataclasses
import glob
import os
import random
import re
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from refusal_jax import asset_paths
from refusal_jax import errors
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data import chat
from refusal_jax.data import sources
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models.model import Model
from refusal_jax.pipeline import artifacts
from refusal_jax.sae import check_sae_fits, load_sae
from refusal_jax.sae import transfer
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace
from refusal_jax.sweeps.engine import Chunks, ChunkSizes
from refusal_jax.sweeps.metrics import Metric, metric_from

SPLITS = sources.SPLITS
_MARKER = 'QQXQQ'

# Token classes of `token_classes` (0 is padding).
BOS, TEMPLATE, INSTRUCTION = 1, 2, 3
CLASS_NAMES = {BOS: 'bos', TEMPLATE: 'template', INSTRUCTION: 'instruction'}


@dataclasses.dataclass
class PromptSet:
  """Instructions and their left-padded chat encoding.

  Attributes:
    instructions: the user messages.
    ids: [B, T] int32 token ids.
    mask: [B, T] int32, 1 at real tokens.
  """
  instructions: list[str]
  ids: np.ndarray
  mask: np.ndarray

  def __len__(self):
    return len(self.instructions)

  def subset(self, idx) -> 'PromptSet':
    idx = list(idx)
    ids, mask = self.ids[idx], self.mask[idx]
    keep = mask.any(0)  # drop columns that are padding in every row
    first = int(np.argmax(keep)) if keep.any() else 0
    return PromptSet([self.instructions[i] for i in idx], ids[:, first:],
                     mask[:, first:])


def token_classes(ps: PromptSet, n_prefix: int, n_eoi: int) -> np.ndarray:
  """[B, T] 0 = padding, BOS, TEMPLATE (other template token), INSTRUCTION.

  Args:
    ps: left-padded chat prompts.
    n_prefix: template tokens before the instruction, BOS included.
    n_eoi: template tokens after the instruction.
  """
  cls = np.zeros(ps.mask.shape, np.int8)
  for b in range(len(ps)):
    real = np.flatnonzero(ps.mask[b])
    if not len(real):
      continue
    cls[b, real] = INSTRUCTION
    cls[b, real[:n_prefix]] = TEMPLATE
    cls[b, real[-n_eoi:]] = TEMPLATE
    cls[b, real[0]] = BOS
  return cls


@dataclasses.dataclass
class Context:
  """Shared state of one dissection run.

  Attributes:
    config: the experiment config.
    model: the loaded model (with tokenizer).
    sae: the SAE whose latents are searched (with `config.saes`, the deepest
      SAE of `space`).
    hydra_saes: SAEs downstream of `sae` used to look for dormant features.
    metric: the refusal metric at the last position.
    prompts: {'harmful_train', 'harmless_train', ...} PromptSets.
    n_eoi: number of post-instruction template tokens.
    n_prefix: number of template tokens before the instruction (BOS incl.).
    chunks: sweep memory bounds as configured (also the block size of
      resumable units of work, so they stay fixed).
    workdir: where finished units of work are memoised (None = nowhere).
    mesh: device mesh the parameters live on and sweeps split masks over
      (None = one device).
    special_ids: the tokenizer's special token ids, BOS included.
    skip_ids: the token ids SAE edits and SAE statistics skip: `special_ids`
      under `config.sae_skip_special_tokens`, else none.
    chunk_sizes: per-operation chunk sizes, halved on out-of-memory (default:
      from `chunks` and config.eval.batch_size).
    space: the searched feature space (default: `sae` alone, features are
      its latents).
    pools: {'harmful_train', ...} every instruction of each split in the
      seeded order the prompt sets were drawn from (before the refusal
      filter), for stages that want more prompts than `prompts` holds.
  """
  config: ml_collections.ConfigDict
  model: Model
  sae: SAE
  hydra_saes: list[SAE]
  metric: Metric
  prompts: dict[str, PromptSet]
  n_eoi: int
  n_prefix: int
  chunks: Chunks
  workdir: str | None = None
  mesh: Any = None
  special_ids: tuple[int, ...] = ()
  skip_ids: tuple[int, ...] = ()
  chunk_sizes: ChunkSizes | None = None
  space: FeatureSpace | None = None
  pools: dict[str, list[str]] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.space is None:
      self.space = FeatureSpace((self.sae,))
    if self.chunk_sizes is None:
      ev = self.config.get('eval')
      batch = ev.get('batch_size') if ev is not None else None
      self.chunk_sizes = ChunkSizes(self.chunks,
                                    batch or self.chunks.prompts)

  def memo(self, stage: str) -> artifacts.Memo:
    """The resumable store of `stage`'s finished units of work."""
    return artifacts.Memo(self.workdir, stage)

  def token_classes(self, ps: PromptSet) -> np.ndarray:
    """[B, T] token classes of `ps` (see `token_classes`)."""
    return token_classes(ps, self.n_prefix, self.n_eoi)

  @property
  def skip_array(self) -> jnp.ndarray | None:
    """`skip_ids` as an int32 array for SAEEdit, None when nothing skips."""
    return jnp.asarray(self.skip_ids, jnp.int32) if self.skip_ids else None

  @property
  def direction_skip_array(self) -> jnp.ndarray | None:
    """Token ids every ablation of the refusal direction leaves alone:
    `special_ids` under `config.direction.skip_special_tokens`, else None."""
    if not self.config.direction.get('skip_special_tokens') or not (
        self.special_ids):
      return None
    return jnp.asarray(self.special_ids, jnp.int32)

  def sae_edit(self, sae: SAE, latent_mask, value=0.0,
               mode: str = 'zero') -> SAEEdit:
    """An edit of `sae`'s latents that leaves `skip_ids` tokens unchanged."""
    return SAEEdit(sae=sae, latent_mask=latent_mask, value=value, mode=mode,
                   skip_ids=self.skip_array)

  def feature_edits(self, features, value=0.0,
                    mode: str = 'zero') -> tuple[SAEEdit, ...]:
    """One `sae_edit` per SAE of `space` with some of `features` edited."""
    sae_of, latent_of = self.space.locate(features)
    edits = []
    for s, sae in enumerate(self.space.saes):
      if (sae_of == s).any():
        mask = np.zeros(sae.d_sae, np.float32)
        mask[latent_of[sae_of == s]] = 1.0
        edits.append(self.sae_edit(sae, mask, value=value, mode=mode))
    return tuple(edits)

  def encode(self, instructions) -> PromptSet:
    cfg = self.model.config
    ids, mask = chat.encode_chat(
        self.model.tokenizer, instructions, bos_id=cfg.bos_token_id,
        max_length=cfg.max_position_embeddings)
    return PromptSet(list(instructions), ids, mask)


def _template_lengths(tokenizer, bos_id) -> tuple[int, int]:
  """(tokens before, tokens after) the instruction in the chat template."""
  text = chat.format_chat(tokenizer, [_MARKER])[0]
  before, after = text.split(_MARKER)
  n_before = len(tokenizer(before, add_special_tokens=False)['input_ids'])
  if bos_id is not None and not before.startswith(
      tokenizer.convert_ids_to_tokens(bos_id) or '\0'):
    n_before += 1
  n_after = len(tokenizer(after, add_special_tokens=False)['input_ids'])
  return n_before, n_after


def system_length(tokenizer, bos_id, n_prefix: int) -> int:
  """Leading template tokens before the user turn, BOS included.

  The user turn's header is the longest common ending of the text before
  the instruction and of the text between an assistant reply and the next
  user message, in tokens; what precedes it is the system block (Llama-3.1's default
  system message, SmolLM2's system prompt), or BOS alone (Gemma-2). The
  token closing the system turn ends an assistant turn too, so it counts
  as the header's. A template that renders no such conversation counts BOS
  alone.

  Args:
    tokenizer: the chat tokenizer.
    bos_id: the model's BOS id (None: none).
    n_prefix: template tokens before the instruction (`_template_lengths`).
  """
  a, b, c = _MARKER + 'A', _MARKER + 'B', _MARKER + 'C'
  try:
    text = tokenizer.apply_chat_template(
        [{'role': 'user', 'content': a}, {'role': 'assistant', 'content': b},
         {'role': 'user', 'content': c}], tokenize=False)
  except Exception:  # pylint: disable=broad-except
    return min(1, n_prefix)
  if b not in text or c not in text:
    return min(1, n_prefix)
  ids = lambda t: list(tokenizer(t, add_special_tokens=False)['input_ids'])
  before, gap = ids(text.split(a)[0]), ids(text.split(b, 1)[1].split(c)[0])
  n = 0  # common ending, in tokens
  while n < min(len(before), len(gap)) and before[-1 - n] == gap[-1 - n]:
    n += 1
  n_system = len(before) - n
  if bos_id is not None and (not before or before[0] != bos_id):
    n_system += 1
  return max(1, min(n_system, n_prefix)) if n_prefix else 0


def _token_ids(tokenizer, words) -> tuple[int, ...]:
  ids = []
  for w in words:
    enc = tokenizer(w, add_special_tokens=False)['input_ids']
    if not enc:
      raise errors.ConfigError(f'token {w!r} encodes to nothing')
    ids.append(enc[0])
  return tuple(dict.fromkeys(ids))


def padded_rows(i0: int, i1: int, size: int) -> list[int]:
  """Rows i0..i1-1, the last one repeated up to `size` rows: batches of one
  shape share one compiled pass (the caller drops the repeats)."""
  return list(range(i0, i1)) + [i1 - 1] * max(0, size - (i1 - i0))


def refusal_scores(model: Model, metric: Metric, ps: PromptSet,
                   batch_size: int, interventions=None) -> np.ndarray:
  """[B] last-position metric of each prompt (batched, jitted).

  Every batch has the set's width and min(batch_size, B) rows (the last
  prompt repeated, its values dropped): one compiled pass per prompt set.
  """
  out = []
  size = max(1, min(int(batch_size), len(ps)))
  for i in range(0, len(ps), size):
    j = min(i + size, len(ps))
    rows = padded_rows(i, j, size)
    logits = model.forward(ps.ids[rows], ps.mask[rows],
                           interventions=interventions,
                           logits_at='last').logits[:, 0]
    out.append(np.asarray(metric(logits))[:j - i])
  scores = np.concatenate(out)
  errors.check_finite('the refusal metric of the prompts', scores)
  return scores


def _uses_space(config) -> bool:
  """Whether `config` searches several SAEs as one feature space."""
  return bool(config.get('saes')) or bool(
      config.get('organism') and config.get('sae_layers'))


def space_paths(config) -> list[str]:
  """The SAE folders of `config.saes`, '{layer}' filled from sae_layers.

  For an organism with `saes` empty, `sae_layers` names its shipped SAEs.
  """
  if not config.get('saes') and config.get('organism'):
    return [asset_paths.layer_sae_path(config.organism, l)
            for l in config.get('sae_layers') or ()]
  paths = []
  for entry in config.get('saes') or ():
    if '{layer}' not in entry:
      paths.append(entry)
      continue
    if not config.get('sae_layers'):
      raise errors.ConfigError(
          f"saes entry {entry!r} has '{{layer}}' but sae_layers is empty")
    paths += [entry.format(layer=int(l)) for l in config.sae_layers]
  return [_pick_folder(p, config.get('sae_l0_target') or 0) if '*' in p
          else p for p in paths]


def _pick_folder(pattern: str, l0_target: float) -> str:
  """The folder matching glob `pattern`; of several, the one whose name ends
  in the number (the L0, as Gemma Scope's `average_l0_N`) nearest
  `l0_target`."""
  matches = sorted(p for p in glob.glob(pattern) if os.path.isdir(p))
  if not matches:
    raise errors.ConfigError(f'no SAE folder matches {pattern}')
  if len(matches) == 1:
    return matches[0]
  if not l0_target:
    raise errors.ConfigError(
        f'{len(matches)} SAE folders match {pattern}; set sae_l0_target to '
        'take the one whose L0 (the number ending its name) is nearest')

  def l0(path):
    found = re.search(r'(\d+(?:\.\d+)?)$', os.path.basename(path))
    if not found:
      raise errors.ConfigError(
          f'{path} matches {pattern} but its name does not end in an L0')
    return float(found.group(1))

  return min(matches, key=lambda p: (abs(l0(p) - l0_target), l0(p)))


def resolve_paths(config) -> tuple[str, str, list[str]]:
  """(model path, SAE path, hydra SAE paths) with organism defaults.

  With several SAEs (`config.saes`, or an organism's `sae_layers`) the SAE
  path is '' (the SAEs are `space_paths`).
  """
  model_path, sae_path = config.model_path, config.sae_path
  hydra = list(config.get('hydra_sae_paths') or ())
  if config.get('organism'):
    model_path = model_path or asset_paths.organism_path(config.organism)
    sae_path = sae_path or asset_paths.sae_path(config.organism)
    if not hydra:
      hydra = asset_paths.hydra_sae_paths(config.organism)
  if not model_path or not (sae_path or _uses_space(config)):
    raise errors.ConfigError(
        'set model_path and sae_path or saes (or organism)')
  return model_path, '' if _uses_space(config) else sae_path, hydra


def input_paths(config) -> list[str]:
  """The files a run reads: model, SAEs, (for file data) prompt files and
  the model judge (`judge.model_path`, when set)."""
  model_path, sae_path, hydra = resolve_paths(config)
  paths = [model_path, *([sae_path] if sae_path else space_paths(config)),
           *hydra, *sources.input_files(config.data)]
  judge = config.get('judge')
  if judge is not None and judge.get('model_path'):
    paths.append(judge.model_path)
  return paths


def build_context(config: ml_collections.ConfigDict, mesh=None,
                  workdir: str | None = None) -> Context:
  """Loads the model, SAEs and prompts named by `config`.

  Args:
    config: the experiment config.
    mesh: optional device mesh; parameters are loaded into their shardings.
    workdir: where stages memoise finished units of work.

  Raises:
    errors.RefusalJaxError: with a one-line message on any bad input.
  """
  model_path, sae_path, hydra_paths = resolve_paths(config)
  dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}.get(config.dtype)
  if dtype is None:
    raise errors.ConfigError(
        f"dtype {config.dtype!r}: expected 'float32' or 'bfloat16'")
  model = load_model(model_path, dtype=dtype, mesh=mesh)
  if model.tokenizer is None:
    raise errors.CheckpointError(
        f'{model_path} has no tokenizer files; the pipeline needs the chat '
        'tokenizer saved with the model')
  mcfg = model.config

  def load(path):
    sae = load_sae(path)
    check_sae_fits(sae, mcfg.d_model, mcfg.num_layers)
    return sae

  space = (FeatureSpace.of([load(p) for p in space_paths(config)])
           if not sae_path else None)
  sae = load(sae_path) if sae_path else space.saes[-1]
  hydra_saes = [load(p) for p in hydra_paths]
  searched = list(space.saes) if space else [sae]
  transfer.warn_base_saes_on_instruct([*searched, *hydra_saes], model_path,
                                      mcfg.num_layers)
  tok = model.tokenizer
  special = chat.special_token_ids(tok, mcfg.bos_token_id)
  m = config.metric
  metric = metric_from(m.name, _token_ids(tok, m.refusal_tokens),
                       _token_ids(tok, m.comply_tokens)
                       if m.name == 'logit_diff' else ())
  n_prefix, n_eoi = _template_lengths(tok, mcfg.bos_token_id)
  data = config.data
  raw = sources.instructions(data)
  rng = random.Random(config.seed)
  sizes = {'train': data.n_train, 'val': data.n_val, 'test': data.n_test}
  ctx = Context(config=config, model=model, sae=sae, hydra_saes=hydra_saes,
                metric=metric, prompts={}, n_eoi=n_eoi, n_prefix=n_prefix,
                chunks=Chunks(masks=config.chunks.masks,
                              prompts=config.chunks.prompts), workdir=workdir,
                mesh=mesh, special_ids=special,
                skip_ids=(special if config.get('sae_skip_special_tokens')
                          else ()), space=space)
  for key, instructions in raw.items():
    split = key.split('_')[1]
    if not instructions:
      raise errors.PromptError(f'no {key} prompts')
    pool = list(instructions)
    rng.shuffle(pool)
    ctx.pools[key] = pool
    ps = ctx.encode(pool[:sizes[split] * (2 if data.filter and split != 'test'
                                          else 1)])
    if data.filter and split != 'test':
      scores = refusal_scores(model, metric, ps, config.chunks.prompts)
      thr = metric.threshold_default
      keep = scores > thr if key.startswith('harmful') else scores < thr
      idx = [i for i in np.flatnonzero(keep)][:sizes[split]]
      if not idx:
        raise errors.PromptError(
            f'no {key} prompt passes the refusal filter; the model does not '
            'refuse as expected (set data.filter=False to skip it)')
      ps = ps.subset(idx)
    ctx.prompts[key] = ps
  return ctx
