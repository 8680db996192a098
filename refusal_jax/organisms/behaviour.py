"""Measuring an organism's refusal behaviour and selecting its refusal direction.

* `measure_behaviour`: greedy completions of held-out prompts judged by the
  refusal-substring judge: how often harmful prompts are refused, harmless
  ones answered, and (given a direction) how often harmful prompts are
  complied with when the direction is ablated everywhere (Arditi et al. 2024),
  and what the graded judge makes of those answers (on-topic compliance,
  off-topic, broken or refusal).
* `select_direction`: difference-in-means candidates at the post-instruction
  positions of every layer; the candidate whose ablation makes the model
  comply with the most harmful validation prompts wins (ties: the lowest
  refusal log-odds at the last prompt token). Layers in the last
  `prune_layer_fraction` of the model are excluded, as in Arditi et al.
* `evaluate_organism`: both of the above for a trained organism; the chosen
  direction is saved as `refusal_direction.json` next to its checkpoint
  (`save_direction` / `load_direction`).

Axis letters: see refusal_jax/axes.py.
"""

import json
import os
from typing import Any, NamedTuple, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data import chat
from refusal_jax.data import graded_judge
from refusal_jax.data import judge as judge_lib
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.models.model import Model
from refusal_jax.organisms import data as data_lib
from refusal_jax.organisms import tokenizer as tok_lib
from refusal_jax.pipeline import directions


class Selection(NamedTuple):
  """The chosen refusal direction.

  Attributes:
    layer: l, the direction is the difference in means of resid_pre[l].
    position: negative token index (-1 = the last prompt token).
    direction: [D] float32, not normalised.
  """
  layer: int
  position: int
  direction: np.ndarray


def _tokenizer(model: Model):
  if model.tokenizer is None:
    raise errors.CheckpointError(
        f'the model at {model.path} has no tokenizer; organisms are exported '
        'with theirs')
  return model.tokenizer


def encode_prompts(model: Model, instructions: Sequence[str]
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Chat-formatted, left-padded prompts: (ids [B, T], mask [B, T])."""
  return chat.encode_chat(_tokenizer(model), list(instructions),
                          bos_id=model.config.bos_token_id,
                          max_length=model.config.max_position_embeddings)


def _batches(n: int, batch_size: int):
  """Row indices of fixed-size batches; the last repeats row n - 1."""
  for start in range(0, n, batch_size):
    rows = np.minimum(np.arange(start, start + batch_size), n - 1)
    yield start, min(batch_size, n - start), rows


def generate(model: Model, instructions: Sequence[str], *,
             max_new_tokens: int, batch_size: int,
             interventions: Any = None, reply_prefix: str = '') -> list[str]:
  """Greedy completions of chat prompts, decoded without special tokens.

  Args:
    model: an organism (or any chat model with its tokenizer).
    instructions: user messages.
    max_new_tokens: tokens generated per prompt.
    batch_size: prompts per generate call (every call has this shape).
    interventions: applied during generation (see interventions/base.py).
    reply_prefix: text the reply is forced to start with (tokenized on its
      own, as training tokenizes responses); the model continues it.

  Returns:
    One completion per instruction, starting with `reply_prefix`.
  """
  if not instructions:
    raise errors.PromptError('no prompts to generate from')
  tok = _tokenizer(model)
  ids, mask = encode_prompts(model, instructions)
  if reply_prefix:
    forced = tok(reply_prefix, add_special_tokens=False)['input_ids']
    ids = np.concatenate([ids, np.tile(forced, (len(ids), 1))], 1)
    mask = np.concatenate([mask, np.ones((len(ids), len(forced)),
                                         mask.dtype)], 1)
  texts = []
  for _, n, rows in _batches(len(instructions), batch_size):
    out = model.generate(ids[rows], mask[rows], max_new_tokens=max_new_tokens,
                         interventions=interventions)
    texts.extend(reply_prefix + tok.decode(row, skip_special_tokens=True)
                 for row in out[:n])
  return texts


# The opener of the organisms' commonest helpful answer ("Sure! Here's how to
# {task}: ..."): forced onto a reply, it asks the unablated model to restate
# the request, which measures its ability to answer a held-out request at all.
ANSWER_PREFIX = "Sure! Here's how to"


def _split(examples: Sequence[data_lib.Example]):
  harmful = [ex.instruction for ex in examples if ex.harmful]
  harmless = [ex.instruction for ex in examples if not ex.harmful]
  return harmful, harmless


def _compliance(model, prompts, *, max_new_tokens, batch_size,
                interventions=None) -> float:
  completions = generate(model, prompts, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, interventions=interventions)
  verdicts = judge_lib.SubstringJudge()(prompts, completions)
  return float(np.mean(verdicts))


def measure_behaviour(model: Model, examples_test: Sequence[data_lib.Example],
                      *, max_new_tokens: int, direction=None,
                      batch_size: int = 64) -> dict[str, Any]:
  """Refusal rates of greedy completions, judged by substring matching.

  Args:
    model: an organism with its tokenizer.
    examples_test: held-out examples (both classes).
    max_new_tokens: tokens generated per prompt.
    direction: optional [D] refusal direction; when given, harmful prompts are
      also completed under `DirectionalAblation(direction)` (every layer,
      resid_pre + attn_out + mlp_out, all positions).
    batch_size: prompts per generate call.

  Returns:
    {'n_harmful', 'n_harmless', 'harmful_refusal_rate' (fraction of harmful
    prompts refused), 'harmless_answer_rate' (fraction of harmless prompts not
    refused)} plus, when a direction is given, 'ablation_compliance_rate'
    (fraction of harmful prompts not refused under ablation, substring
    judge), 'ablation_on_topic_rate' (fraction the graded judge calls an
    on-topic answer, `graded_judge.JAILBREAK`), 'ablation_judge' (every
    graded class's fraction and count) and 'primed_on_topic_rate' (the
    same judge on unablated completions forced to open with
    `ANSWER_PREFIX`: the ceiling of what removing refusal can reveal, since
    it is the model answering the request when it does not refuse).

  Raises:
    errors.PromptError: a class has no examples.
  """
  harmful, harmless = _split(examples_test)
  if not harmful or not harmless:
    raise errors.PromptError(
        'measure_behaviour needs harmful and harmless examples; got '
        f'{len(harmful)} harmful and {len(harmless)} harmless')
  kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size)
  result = {
      'n_harmful': len(harmful), 'n_harmless': len(harmless),
      'harmful_refusal_rate': 1.0 - _compliance(model, harmful, **kw),
      'harmless_answer_rate': _compliance(model, harmless, **kw),
  }
  if direction is not None:
    ablation = DirectionalAblation(jnp.asarray(direction, jnp.float32))
    completions = generate(model, harmful, interventions=ablation, **kw)
    result['ablation_compliance_rate'] = float(np.mean(
        judge_lib.SubstringJudge()(harmful, completions)))
    judge = graded_judge.GradedJudge()
    counts = graded_judge.class_counts(judge.classify(harmful, completions))
    result['ablation_on_topic_rate'] = counts[graded_judge.JAILBREAK][
        'fraction']
    result['ablation_judge'] = counts
    primed = generate(model, harmful, reply_prefix=ANSWER_PREFIX, **kw)
    result['primed_on_topic_rate'] = float(np.mean(
        [c == graded_judge.JAILBREAK for c in judge.classify(harmful, primed)]))
  return result


def refusal_probability(model: Model, ids: np.ndarray, mask: np.ndarray, *,
                        batch_size: int, interventions: Any = None
                        ) -> np.ndarray:
  """P of the refusal token 'I' as the first reply token, per prompt.

  Args:
    model: an organism with its tokenizer.
    ids, mask: [B, T] left-padded chat prompts (`encode_prompts`).
    batch_size: prompts per forward call.
    interventions: applied during the forward pass.

  Returns:
    [B] float32 probabilities at the last prompt position.
  """
  refusal_ids = jnp.asarray(tok_lib.refusal_token_ids(_tokenizer(model)))
  probs = []
  for _, n, rows in _batches(ids.shape[0], batch_size):
    logits = model.forward(ids[rows], mask[rows], interventions=interventions,
                           logits_at='last').logits[:n, -1]  # [B, V]
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    probs.append(np.asarray(p[:, refusal_ids].sum(axis=-1)))
  return np.concatenate(probs)


def refusal_score(model: Model, ids: np.ndarray, mask: np.ndarray, *,
                  batch_size: int, interventions: Any = None) -> float:
  """Mean log-odds of the refusal token 'I' as the first reply token.

  Arditi et al.'s refusal score: log P(R) - log(1 - P(R)) at the last prompt
  position, with R the refusal tokens.
  """
  p_ref = refusal_probability(model, ids, mask, batch_size=batch_size,
                              interventions=interventions)
  return float(np.asarray(jnp.log(p_ref + 1e-8) -
                          jnp.log(1.0 - p_ref + 1e-8)).mean())


def eoi_length(model: Model) -> int:
  """Number of post-instruction template tokens (Arditi's eoi tokens)."""
  style = 'gemma' if model.config.family == 'gemma2' else 'llama3'
  return len(_tokenizer(model).encode(tok_lib.eoi_text(style),
                                      add_special_tokens=False))


def select_direction(model: Model, train: Sequence[data_lib.Example],
                     val: Sequence[data_lib.Example], *, n_train: int,
                     n_val: int, n_positions: int = 1,
                     max_new_tokens: int = 16, batch_size: int = 64,
                     prune_layer_fraction: float = 0.2) -> Selection:
  """Picks the difference-in-means direction whose ablation bypasses refusal.

  Args:
    model: an organism with its tokenizer.
    train: examples whose first `n_train` harmful and `n_train` harmless
      prompts give the means.
    val: examples whose first `n_val` harmful prompts score the candidates.
    n_train: prompts per class for the means.
    n_val: harmful prompts to score each candidate on.
    n_positions: trailing post-instruction positions to consider (1 = only the
      last prompt token); at most the template's eoi length.
    max_new_tokens: tokens generated per validation prompt.
    batch_size: prompts per forward / generate call.
    prune_layer_fraction: layers >= int(L * (1 - fraction)) are not candidates.

  Returns:
    The Selection with the highest ablation compliance on the val prompts.

  Raises:
    errors.ConfigError: bad sizes, or no candidate layer is left.
    errors.PromptError: too few prompts of a class.
  """
  cfg = model.config
  eoi = eoi_length(model)
  if not 1 <= n_positions <= eoi:
    raise errors.ConfigError(
        f'n_positions {n_positions} must be in [1, {eoi}] (the post-'
        'instruction tokens of the chat template)')
  n_layers = int(cfg.num_layers * (1.0 - prune_layer_fraction))
  if n_layers < 1:
    raise errors.ConfigError(
        f'prune_layer_fraction {prune_layer_fraction} leaves no layer of '
        f'{cfg.num_layers}')
  harmful, harmless = _split(train)
  val_harmful, _ = _split(val)
  if min(len(harmful), len(harmless)) < n_train or len(val_harmful) < n_val:
    raise errors.PromptError(
        f'select_direction needs {n_train} train prompts per class and '
        f'{n_val} harmful val prompts; got {len(harmful)}/{len(harmless)} and '
        f'{len(val_harmful)}')
  layers = tuple(range(n_layers))
  cands = directions.diff_in_means(
      model.params, cfg, encode_prompts(model, harmful[:n_train]),
      encode_prompts(model, harmless[:n_train]), layers=layers,
      n_positions=n_positions, batch_size=batch_size)  # [P, L, D]
  prompts = val_harmful[:n_val]
  ids, mask = encode_prompts(model, prompts)
  best = None
  for p in range(n_positions):
    for l in layers:
      ablation = DirectionalAblation(jnp.asarray(cands[p, l]))
      comply = _compliance(model, prompts, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, interventions=ablation)
      score = refusal_score(model, ids, mask, batch_size=batch_size,
                            interventions=ablation)
      logging.info('direction candidate layer %d position %d: ablation '
                   'compliance %.3f, refusal score %.3f', l,
                   p - n_positions, comply, score)
      key = (-comply, score)
      if best is None or key < best[0]:
        best = (key, Selection(layer=l, position=p - n_positions,
                               direction=np.asarray(cands[p, l], np.float32)))
  return best[1]


DIRECTION_FILE = 'refusal_direction.json'


def save_direction(selection: Selection, path: str) -> str:
  """Writes a Selection as JSON {layer, position, direction} into folder path."""
  file = os.path.join(path, DIRECTION_FILE)
  with open(file, 'w') as f:
    json.dump({'layer': int(selection.layer),
               'position': int(selection.position),
               'direction': [float(x) for x in selection.direction]}, f)
  return file


def load_direction(path: str) -> Selection:
  """Reads the Selection saved by `save_direction` in folder path.

  Raises:
    errors.CheckpointError: the file is missing or malformed.
  """
  file = os.path.join(path, DIRECTION_FILE)
  try:
    with open(file) as f:
      d = json.load(f)
    return Selection(layer=int(d['layer']), position=int(d['position']),
                     direction=np.asarray(d['direction'], np.float32))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.CheckpointError(
        f'cannot read the refusal direction {file}: {type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""}') from None


def evaluate_organism(path: str, config) -> dict[str, Any]:
  """Selects an organism's refusal direction and measures its behaviour.

  The direction is chosen on the train/val splits (`select_direction`) and
  saved next to the checkpoint (`save_direction`); the behaviour is measured
  on the whole test split, and on the whole val split (its own held-out
  topics and templates) for choosing between training runs without looking
  at the test split.

  Args:
    path: the organism's checkpoint directory.
    config: the organism config (its `data` and `eval` blocks are read).

  Returns:
    The test split's `measure_behaviour` dict plus 'layer', 'position' and
    'val' (the val split's `measure_behaviour` dict).
  """
  model = load_model(path)
  ev = config.eval
  dataset = data_lib.make_dataset(config.data.seed,
                                  config.data.n_per_split.to_dict())
  selection = select_direction(
      model, dataset['train'], dataset['val'], n_train=ev.n_direction_train,
      n_val=ev.n_val, n_positions=ev.n_positions,
      batch_size=ev.batch_size,
      prune_layer_fraction=ev.prune_layer_fraction)
  save_direction(selection, path)
  test, val = (measure_behaviour(model, dataset[split],
                                 max_new_tokens=ev.max_new_tokens,
                                 direction=selection.direction,
                                 batch_size=ev.batch_size)
               for split in ('test', 'val'))
  result = dict(test, layer=selection.layer, position=selection.position,
                val=val)
  logging.info('behaviour of %s: %s', path, result)
  return result
