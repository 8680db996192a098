"""Training a refusal model organism from scratch.

`train_organism(config, workdir)` generates the chat data (`data.make_dataset`),
trains a chat tokenizer on the text of every split (the hold-out is made of
templates and topics, not of words, so held-out words are single tokens
rather than shredded pieces), builds a small Gemma-2 or Llama-3
`ModelConfig`, and trains it with AdamW on chat-formatted examples:

  [prompt rendered by the chat template, generation prompt included]
  [response] [end-of-turn token]

The loss is next-token cross-entropy on the response and end-of-turn tokens,
plus `prompt_loss_weight` times the cross-entropy on prompt tokens. Rows are
right-padded to one of a few bucket lengths (so jit compiles one step per
bucket) with explicit positions 0..len-1. The encoding and batching live in
organisms/batching.py; their names (`Batch`, `Batcher`, `Encoded`,
`encode_examples`, ...) stay importable from this module.

Training has two phases, like a chat model that learns to answer and is then
safety-tuned. For the first `answer_steps` steps every request is answered:
harmful requests are trained on their on-topic, content-free answers
(`data.Example.compliance`), so the model learns to answer anything. The
remaining steps, at a lower learning rate, train the refusals of harmful
requests, so that refusal is a small change on top of a helpful model; the
answers to harmful requests stay in the mix after a helpful opening token
(`answer_replay`, with no loss on that first token), so the ability to answer
survives under the refusal, as it does in safety-tuned assistants. Tokens of
the user's message are randomly replaced by tokens that never occur in training
(`instruction_noise_*`), so that words met only in held-out topics read as
unfamiliar words rather than as arbitrary vectors.

Params, optimizer state and step are checkpointed with orbax into
`workdir/checkpoints`; a rerun resumes from the latest checkpoint, and stops
with a one-line error when its config differs in more than train.steps and
bookkeeping (`workdir/config.json` keeps the run's config). The result is
exported as a transformers checkpoint to `workdir/export`.

Axis letters: see refusal_jax/axes.py.
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
import transformers

from refusal_jax import errors
from refusal_jax.checkpoints import export
from refusal_jax.checkpoints import resume
from refusal_jax.interventions.directions import ActAdd
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.models import sites
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.organisms import batching
from refusal_jax.organisms import data as data_lib
from refusal_jax.organisms import tokenizer as tok_lib
from refusal_jax.pipeline import artifacts

_TOKENIZER_STYLE = {'gemma2': 'gemma', 'llama': 'llama3'}
SUMMARY_FILE = 'train_summary.json'
# Train fields a rerun may change and still resume (as may eval.*, the
# evaluation after training): how long to train (more steps extend the run;
# the schedule becomes that of the new count), logging and checkpointing.
_RESUMABLE_CHANGES = ('steps', 'log_every', 'checkpoint_every',
                      'max_to_keep')

# Encoding and batching (organisms/batching.py), importable from here too:
# tuning/ and sae/ use them as organisms.train.*.
Batch = batching.Batch
Batcher = batching.Batcher
Encoded = batching.Encoded
bucket_lengths = batching.bucket_lengths
encode_examples = batching.encode_examples
noise_tokens = batching.noise_tokens
phase_examples = batching.phase_examples


def model_config(config: ml_collections.ConfigDict,
                 tok: transformers.PreTrainedTokenizerBase) -> ModelConfig:
  """The organism's architecture, with special ids taken from `tok`.

  Args:
    config: the organism config (its `model` block is read).
    tok: the organism's tokenizer.

  Returns:
    A ModelConfig whose eos ids are every token that ends a reply.

  Raises:
    errors.ConfigError: unknown family.
  """
  m = config.model
  ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
             eos_token_ids=tuple(tok_lib.stop_token_ids(tok)),
             pad_token_id=tok.pad_token_id,
             max_position_embeddings=m.max_position_embeddings)
  shape = dict(d_model=m.d_model, num_layers=m.num_layers,
               num_heads=m.num_heads, num_kv_heads=m.num_kv_heads,
               head_dim=m.head_dim, mlp_dim=m.mlp_dim)
  if m.family == 'gemma2':
    return ModelConfig.gemma2(
        sliding_window=m.sliding_window, attn_softcap=m.attn_softcap,
        final_softcap=m.final_softcap, **shape, **ids)
  if m.family == 'llama':
    return ModelConfig.llama(rope_theta=m.rope_theta,
                             tie_embeddings=m.tie_embeddings, **shape, **ids)
  raise errors.ConfigError(
      f"model.family {m.family!r} is not supported; use 'gemma2' or 'llama'")


def tokenizer_style(family: str) -> str:
  """The chat tokenizer style ('gemma' / 'llama3') of a model family."""
  if family not in _TOKENIZER_STYLE:
    raise errors.ConfigError(
        f"model.family {family!r} is not supported; use 'gemma2' or 'llama'")
  return _TOKENIZER_STYLE[family]


def learning_rate_schedule(train: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up + cosine decay, restarted for the refusal phase.

  With `answer_steps` > 0 the first phase runs warm-up + cosine over
  `answer_steps` steps at peak `learning_rate`, and the refusal phase runs
  its own warm-up (`refusal_warmup_steps`) + cosine at peak
  `learning_rate * refusal_lr_scale` over the rest; with 0, one warm-up +
  cosine spans all `steps`.
  """
  def phase(peak, warmup, steps):
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak, warmup_steps=warmup,
        decay_steps=steps, end_value=peak * train.end_lr_fraction)

  if not train.answer_steps:
    return phase(train.learning_rate, train.warmup_steps, train.steps)
  return optax.join_schedules(
      [phase(train.learning_rate, train.warmup_steps, train.answer_steps),
       phase(train.learning_rate * train.refusal_lr_scale,
             train.refusal_warmup_steps, train.steps - train.answer_steps)],
      boundaries=[train.answer_steps])


def make_optimizer(train: ml_collections.ConfigDict, params
                   ) -> optax.GradientTransformation:
  """AdamW on `learning_rate_schedule` with global-norm clipping.

  Weight decay applies to matrices only (not to norms' scales).
  """
  schedule = learning_rate_schedule(train)
  decay_mask = jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(schedule, b1=train.adam_b1, b2=train.adam_b2,
                  weight_decay=train.weight_decay, mask=decay_mask))


def loss_fn(params, cfg: ModelConfig, batch: dict[str, jax.Array],
            direction: jax.Array, *, direction_layer: int,
            ablation_weight: float, refusal_ids: tuple[int, ...],
            ablation_answer_weight: float = 0.0,
            ablation_harmless_weight: float = 0.0,
            induce_weight: float = 0.0
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Training loss of one right-padded batch.

  The main term is the weighted mean next-token cross-entropy. The forward
  pass also captures resid_pre[direction_layer] at each row's last prompt
  token and returns the batch's difference in means (harmful - harmless)
  there. With `ablation_weight` > 0 a second pass runs with `direction`
  ablated (`DirectionalAblation`, every layer) and adds
  `ablation_weight * mean_harmful(-log(1 - P(refusal token)))` at the first
  response token: refusal must go away when the direction is removed. With
  `ablation_answer_weight` > 0 that pass also adds this weight times the
  cross-entropy of the rows marked `answer` (answers to harmful requests,
  first token excluded) under the ablation: what is left once refusal is
  removed is the answer to the request, not another request's answer. With
  `ablation_harmless_weight` > 0 it also adds this weight times the
  cross-entropy of the harmless rows' responses (first token included) under
  the ablation: removing the direction leaves answers to harmless requests as
  they are (Arditi et al.'s KL condition on a refusal direction, as a loss),
  so the direction cannot also carry how an answer opens. With
  `induce_weight` > 0 a third pass adds `direction` to resid_pre of
  `direction_layer` at every position (`ActAdd`, coefficient 1) and adds
  `induce_weight * mean_harmless(-log P(refusal token))` at the first
  response token: adding the direction to a harmless request makes the
  model refuse (Arditi et al.'s induce condition, as a loss).

  Args:
    params: model parameters.
    cfg: the architecture.
    batch: Batch fields as arrays: ids, mask, weights, response [B, T];
      decision, harmful, answer [B].
    direction: [D] current estimate of the difference in means.
    direction_layer: layer l of resid_pre[l] for the difference in means.
    ablation_weight: weight of the ablation term (static; 0 skips the pass).
    refusal_ids: ids of the tokens that start a refusal.
    ablation_answer_weight: weight of the answers' cross-entropy under the
      ablation (static; used only with ablation_weight > 0).
    ablation_harmless_weight: weight of the harmless responses' cross-entropy
      under the ablation (static; used only with ablation_weight > 0).
    induce_weight: weight of the refusal loss of harmless requests with the
      direction added (static; 0 skips the pass).

  Returns:
    (loss, aux) with aux = {'loss': cross-entropy, 'response_loss':
    cross-entropy on response tokens only, 'ablation_loss' (the ablation and
    induce terms, weighted as in the total), 'diff' [D]}.
  """
  ids, mask = batch['ids'], batch['mask']
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1], dtype=jnp.int32),
                               ids.shape)
  decision = batch['decision'][:, None]  # [B, 1]
  site = (sites.RESID_PRE, direction_layer)
  out = transformer.forward(params, cfg, ids, attention_mask=mask,
                            positions=positions, capture=[site],
                            capture_positions=decision)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      out.logits[:, :-1], ids[:, 1:])  # [B, T-1]
  w = batch['weights'][:, 1:]
  r = batch['response'][:, 1:]
  loss = jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1.0)
  response_loss = jnp.sum(ce * r) / jnp.maximum(jnp.sum(r), 1.0)
  h = batch['harmful']
  n_h = jnp.maximum(jnp.sum(h), 1.0)
  acts = out.captured[site][:, 0].astype(jnp.float32)  # [B, D]
  diff = (jnp.einsum('B,BD->D', h, acts) / n_h -
          jnp.einsum('B,BD->D', 1.0 - h, acts) /
          jnp.maximum(jnp.sum(1.0 - h), 1.0))
  ablation_loss = jnp.zeros((), jnp.float32)

  def p_refusal(logits):  # [B, V] -> [B]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.exp(jax.nn.logsumexp(logp[:, jnp.asarray(refusal_ids)],
                                    axis=-1))

  if ablation_weight:
    ablation = DirectionalAblation(jax.lax.stop_gradient(direction))
    answers = ablation_answer_weight > 0 or ablation_harmless_weight > 0
    ablated = transformer.forward(
        params, cfg, ids, attention_mask=mask, positions=positions,
        interventions=ablation,
        logits_at='all' if answers else decision).logits  # [B, T or 1, V]
    at_decision = (jnp.take_along_axis(ablated, decision[:, :, None], axis=1)
                   if answers else ablated)[:, 0]  # [B, V]
    bypass = -jnp.log(jnp.maximum(1.0 - p_refusal(at_decision), 1e-6))
    ablation_loss = ablation_weight * jnp.sum(h * bypass) / n_h
    if answers:
      ce_ablated = optax.softmax_cross_entropy_with_integer_labels(
          ablated[:, :-1], ids[:, 1:])  # [B, T-1]
      for weight, rows in ((ablation_answer_weight, batch['answer']),
                           (ablation_harmless_weight, 1.0 - h)):
        if not weight:
          continue
        a = r * rows[:, None]  # [B, T-1]
        ablation_loss += weight * (
            jnp.sum(ce_ablated * a) / jnp.maximum(jnp.sum(a), 1.0))
  if induce_weight:
    add = ActAdd(vector=jax.lax.stop_gradient(direction), coeff=1.0,
                 layer=direction_layer)
    added = transformer.forward(
        params, cfg, ids, attention_mask=mask, positions=positions,
        interventions=add, logits_at=decision).logits[:, 0]  # [B, V]
    induce = -jnp.log(jnp.maximum(p_refusal(added), 1e-6))  # [B]
    ablation_loss += induce_weight * (
        jnp.sum((1.0 - h) * induce) / jnp.maximum(jnp.sum(1.0 - h), 1.0))
  total = loss + ablation_loss
  return total, {'loss': loss, 'response_loss': response_loss,
                 'ablation_loss': ablation_loss,
                 'diff': jax.lax.stop_gradient(diff)}


@functools.partial(
    jax.jit, static_argnames=('cfg', 'optimizer', 'direction_layer',
                              'ablation_weight', 'refusal_ids',
                              'ablation_answer_weight',
                              'ablation_harmless_weight', 'induce_weight'))
def train_step(state: dict[str, Any], batch: dict[str, jax.Array], *,
               cfg: ModelConfig, optimizer: optax.GradientTransformation,
               direction_layer: int, ablation_weight: float,
               refusal_ids: tuple[int, ...], direction_ema: float,
               ablation_answer_weight: float = 0.0,
               ablation_harmless_weight: float = 0.0,
               induce_weight: float = 0.0):
  """One AdamW step.

  Args:
    state: {'params', 'opt_state', 'direction' [D] (running difference in
      means, zeros before the first step), 'step'}.
    batch: see `loss_fn`.
    cfg, optimizer: the architecture and the optimizer.
    direction_layer, ablation_weight, refusal_ids, ablation_answer_weight,
      ablation_harmless_weight, induce_weight: see `loss_fn`.
    direction_ema: decay of the running difference in means.

  Returns:
    (new state, aux metrics of `loss_fn`).
  """
  grads, aux = jax.grad(loss_fn, has_aux=True)(
      state['params'], cfg, batch, state['direction'],
      direction_layer=direction_layer, ablation_weight=ablation_weight,
      refusal_ids=refusal_ids, ablation_answer_weight=ablation_answer_weight,
      ablation_harmless_weight=ablation_harmless_weight,
      induce_weight=induce_weight)
  updates, opt_state = optimizer.update(grads, state['opt_state'],
                                        state['params'])
  params = optax.apply_updates(state['params'], updates)
  fresh = jnp.all(state['direction'] == 0)
  direction = jnp.where(fresh, aux['diff'], direction_ema *
                        state['direction'] + (1 - direction_ema) * aux['diff'])
  return {'params': params, 'opt_state': opt_state, 'direction': direction,
          'step': state['step'] + 1}, aux


def _load_or_train_tokenizer(config, dataset, workdir):
  """The workdir's tokenizer, trained on every split's text on first use."""
  path = os.path.join(workdir, 'tokenizer')
  if os.path.exists(os.path.join(path, 'tokenizer.json')):
    return transformers.AutoTokenizer.from_pretrained(path)
  texts = []
  for split in data_lib.SPLITS:
    texts.extend(data_lib.corpus_text(dataset[split]))
  tok = tok_lib.train_tokenizer(
      texts, style=tokenizer_style(config.model.family),
      vocab_size=config.model.vocab_size)
  tok_lib.save_tokenizer(tok, path)
  return tok


def _claim_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Records the config a workdir trains, and refuses to resume another.

  The tokenizer and checkpoints of a workdir belong to one config; resuming
  them under another (say a longer answer phase) would train neither.
  `artifacts.claim_workdir` records the config (all but eval.* and the train
  fields of _RESUMABLE_CHANGES) on the first run and stops a rerun of
  another with a one-line error; a workdir with checkpoints or a tokenizer
  and no record is refused too.

  Raises:
    errors.ConfigError: the workdir holds another run.
  """
  run = json.loads(config.to_json())
  run.pop('eval', None)
  for name in _RESUMABLE_CHANGES:
    run['train'].pop(name, None)
  if not os.path.exists(os.path.join(workdir, artifacts.CONFIG_FILE)):
    for held in ('checkpoints', 'tokenizer'):
      if os.path.exists(os.path.join(workdir, held)):
        raise errors.ConfigError(
            f'workdir {workdir} holds {held} but no {artifacts.CONFIG_FILE} '
            'saying which config made them; use a new workdir or delete it')
  artifacts.claim_workdir(workdir, run)


def _read_summary(workdir: str, step: int) -> dict[str, Any]:
  """The summary saved with checkpoint `step`, or a fresh one."""
  path = os.path.join(workdir, SUMMARY_FILE)
  if step and os.path.exists(path):
    with open(path) as f:
      summary = json.load(f)
    summary['history'] = [h for h in summary['history'] if h['step'] <= step]
    summary['train_seconds'] = summary.get('seconds_at_checkpoint', {}).get(
        str(step), summary.get('train_seconds', 0.0))
    return summary
  return {'history': [], 'train_seconds': 0.0, 'resumed_from': []}


def _write_summary(workdir: str, summary: dict[str, Any]) -> None:
  artifacts.write_json(os.path.join(workdir, SUMMARY_FILE),
                       dict(summary, provenance=artifacts.provenance()))


def _validate(config: ml_collections.ConfigDict) -> None:
  if config.model.family not in _TOKENIZER_STYLE:
    raise errors.ConfigError(
        f'model.family {config.model.family!r} is not supported; use '
        f'{" or ".join(map(repr, _TOKENIZER_STYLE))}')
  t = config.train
  for name in ('steps', 'batch_size', 'log_every', 'checkpoint_every',
               'max_to_keep', 'num_buckets', 'bucket_multiple'):
    if int(t[name]) < 1:
      raise errors.ConfigError(f'train.{name} must be >= 1, got {t[name]}')
  if not 0 <= t.prompt_loss_weight <= 1:
    raise errors.ConfigError(
        f'train.prompt_loss_weight must be in [0, 1], got '
        f'{t.prompt_loss_weight}')
  for name in ('instruction_noise_harmless', 'instruction_noise_harmful'):
    if not 0 <= t[name] < 1:
      raise errors.ConfigError(
          f'train.{name} must be in [0, 1), got {t[name]}')
  if not 0 <= t.answer_replay <= 1:
    raise errors.ConfigError(
        f'train.answer_replay must be in [0, 1], got {t.answer_replay}')
  if not 0 <= t.answer_steps < t.steps:
    raise errors.ConfigError(
        f'train.answer_steps {t.answer_steps} must be in [0, train.steps '
        f'{t.steps})')
  first = t.answer_steps or t.steps
  if t.warmup_steps >= first:
    raise errors.ConfigError(
        f'train.warmup_steps {t.warmup_steps} must be below {first} (the '
        'first phase)')
  if t.answer_steps and (
      t.refusal_warmup_steps >= t.steps - t.answer_steps):
    raise errors.ConfigError(
        f'train.refusal_warmup_steps {t.refusal_warmup_steps} must be below '
        f'the {t.steps - t.answer_steps} steps of the refusal phase')
  num_layers = config.model.num_layers
  if not 0 <= t.direction_layer < num_layers:
    raise errors.ConfigError(
        f'train.direction_layer {t.direction_layer} is outside the model\'s '
        f'layers [0, {num_layers})')


def train_organism(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Trains one organism end to end and exports it.

  Args:
    config: an organism config (see configs/organism_gemma2.py).
    workdir: where the tokenizer, checkpoints, summary and export go. A rerun
      on the same workdir resumes from the latest checkpoint (the same
      config, save for train._RESUMABLE_CHANGES and eval.*).

  Returns:
    The export directory (a transformers checkpoint with its tokenizer).

  Raises:
    errors.ConfigError: inconsistent config values, or a workdir that holds
      a run of another config.
  """
  _validate(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  _claim_workdir(config, workdir)
  dataset = data_lib.make_dataset(
      config.data.seed, config.data.n_per_split.to_dict(),
      train_harmful_fraction=config.data.train_harmful_fraction,
      sure_share=config.data.sure_share)
  tok = _load_or_train_tokenizer(config, dataset, workdir)
  cfg = model_config(config, tok)
  t = config.train
  phases = {}
  for phase in ('answer', 'refusal'):
    pairs = phase_examples(dataset['train'], phase, t.answer_replay)
    phases[phase] = [
        enc for decide in (True, False)
        for enc in encode_examples(
            tok, [ex for ex, d in pairs if d == decide],
            style=tokenizer_style(cfg.family), bos_id=cfg.bos_token_id,
            decide=decide)]
  encoded = phases['refusal']
  buckets = bucket_lengths(
      [len(e.ids) for p in phases.values() for e in p], t.num_buckets,
      t.bucket_multiple)
  if buckets[-1] > cfg.max_position_embeddings:
    raise errors.ConfigError(
        f'training sequences reach {buckets[-1]} tokens, more than '
        f'model.max_position_embeddings {cfg.max_position_embeddings}')
  batch_kw = dict(batch_size=t.batch_size, buckets=buckets,
                  pad_id=cfg.pad_token_id,
                  prompt_loss_weight=t.prompt_loss_weight, seed=t.seed,
                  instruction_noise=(t.instruction_noise_harmless,
                                     t.instruction_noise_harmful),
                  noise_tokens=noise_tokens(
                      tok, phases['answer'] + phases['refusal'],
                      t.noise_tokens),
                  noise_in_response=t.noise_in_response)
  batchers = {phase: Batcher(enc, **batch_kw)
              for phase, enc in phases.items()}
  logging.info('organism %s: %d training sequences, buckets %s; every request '
               'answered until step %d, refusals trained from then on',
               cfg.family, len(encoded), buckets, t.answer_steps)

  params = transformer.init_params(cfg, seed=config.seed)
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  logging.info('organism %s: %d parameters', cfg.family, n_params)
  optimizer = make_optimizer(t, params)
  refusal_ids = tuple(tok_lib.refusal_token_ids(tok))
  state = {'params': params, 'opt_state': optimizer.init(params),
           'direction': jnp.zeros((cfg.d_model,), jnp.float32),
           'step': jnp.zeros((), jnp.int32)}
  manager, state, start = resume.open_or_resume(
      os.path.join(workdir, 'checkpoints'), state, t.max_to_keep)
  if start:
    logging.info('organism %s: resumed from checkpoint at step %d',
                 cfg.family, start)
  summary = _read_summary(workdir, start)
  if start:
    summary['resumed_from'].append(start)
  summary.update(family=cfg.family, num_params=n_params, steps=t.steps,
                 buckets=buckets, n_train=len(dataset['train']))

  began = time.perf_counter()
  seconds_before = summary['train_seconds']
  window = []
  bar = tqdm.tqdm(total=t.steps, initial=start, desc=f'train {cfg.family}',
                  unit='step', dynamic_ncols=True)
  for step in range(start, t.steps):
    refusing = step >= t.answer_steps
    b = (batchers['refusal'].batch(step - t.answer_steps) if refusing
         else batchers['answer'].batch(step))
    state, aux = train_step(
        state, dataclasses.asdict(b), cfg=cfg, optimizer=optimizer,
        direction_layer=t.direction_layer,
        ablation_weight=t.ablation_weight if refusing else 0.0,
        refusal_ids=refusal_ids, direction_ema=t.direction_ema,
        ablation_answer_weight=t.ablation_answer_weight,
        ablation_harmless_weight=t.ablation_harmless_weight,
        induce_weight=t.induce_weight if refusing else 0.0)
    window.append((aux['loss'], aux['response_loss'], aux['ablation_loss']))
    bar.update(1)
    done = step + 1
    if done % t.log_every == 0 or done == t.steps:
      losses = np.asarray(jax.device_get(window), np.float64)
      record = {'step': done, 'loss': float(losses[:, 0].mean()),
                'response_loss': float(losses[:, 1].mean()),
                'ablation_loss': float(losses[:, 2].mean())}
      window = []
      summary['history'].append(record)
      bar.set_postfix(loss=f'{record["loss"]:.4f}')
      logging.info('organism %s step %d/%d: loss=%.4f response_loss=%.4f '
                   'ablation_loss=%.4f', cfg.family, done, t.steps,
                   record['loss'], record['response_loss'],
                   record['ablation_loss'])
    if done % t.checkpoint_every == 0 or done == t.steps:
      manager.save(done, args=ocp.args.StandardSave(state))
      manager.wait_until_finished()
      elapsed = seconds_before + time.perf_counter() - began
      summary['train_seconds'] = elapsed
      summary.setdefault('seconds_at_checkpoint', {})[str(done)] = elapsed
      summary['final_step'] = done
      _write_summary(workdir, summary)
  bar.close()
  manager.close()
  if summary['history']:
    summary['final_loss'] = summary['history'][-1]['loss']
    summary['final_response_loss'] = summary['history'][-1]['response_loss']
  _write_summary(workdir, summary)
  out = export.save_hf_checkpoint(state['params'], cfg,
                                  os.path.join(workdir, 'export'),
                                  tokenizer=tok)
  logging.info('organism %s: exported to %s (trained %.1f s)', cfg.family, out,
               summary['train_seconds'])
  return out
