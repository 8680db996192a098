"""The LoRA training loop of safety tuning (Optax, orbax resume).

The base parameters are frozen; the adapter (`lora.py`) is trained with
AdamW on the next-token cross-entropy of the response and end-of-turn tokens
of chat examples (`data.py`), batched by `organisms.train.Batcher` (one
padded length, so one compiled step). Each step merges the adapter into the
base weights (W + scale * b @ a) inside the differentiated function, so
gradients reach only `a` and `b`.

The adapter, the optimizer state and the step are checkpointed with orbax
into `workdir/checkpoints`; a rerun resumes from the latest checkpoint and
ends with the same adapter as an uninterrupted run (the batch of each step
depends only on the seed and the step).

Axis letters: see refusal_jax/axes.py.
"""

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from refusal_jax import errors
from refusal_jax.checkpoints import resume
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.organisms import train as organism_train
from refusal_jax.tuning import lora


def make_optimizer(train: ml_collections.ConfigDict
                   ) -> optax.GradientTransformation:
  """AdamW with linear warm-up + cosine decay and global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train.learning_rate,
      warmup_steps=train.warmup_steps, decay_steps=train.steps,
      end_value=train.learning_rate * train.end_lr_fraction)
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(schedule, b1=train.adam_b1, b2=train.adam_b2,
                  weight_decay=train.weight_decay))


def token_losses(params, cfg: ModelConfig, batch: dict[str, jax.Array]
                 ) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy of every predicted token of a right-padded batch.

  Args:
    params: model parameters.
    cfg: the architecture.
    batch: 'ids', 'mask' [B, T] (right-padded, positions 0..T-1).

  Returns:
    (ce [B, T-1] float32: -log P(ids[:, t+1] | ids[:, :t+1]), logits of
    the pass [B, T, V]).
  """
  ids = batch['ids']
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1], dtype=jnp.int32),
                               ids.shape)
  logits = transformer.forward(params, cfg, ids, attention_mask=batch['mask'],
                               positions=positions).logits
  return optax.softmax_cross_entropy_with_integer_labels(
      logits[:, :-1], ids[:, 1:]), logits


def decision_weights(weights: jax.Array, n_tokens: int, factor: float
                     ) -> jax.Array:
  """`weights` [B, T] with each row's first `n_tokens` weighted tokens
  multiplied by `factor` (the tokens where a reply decides to refuse or to
  answer)."""
  rank = jnp.cumsum(weights > 0, axis=1)  # [B, T]
  return jnp.where((weights > 0) & (rank <= n_tokens), factor * weights,
                   weights)


def base_kl(base_logits: jax.Array, logits: jax.Array) -> jax.Array:
  """KL(base || tuned) of next-token distributions [B, T, V] -> [B, T]."""
  base_logp = jax.nn.log_softmax(base_logits.astype(jnp.float32), axis=-1)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.sum(jnp.exp(base_logp) * (base_logp - logp), axis=-1)


def loss_fn(adapter: lora.Adapter, params, batch: dict[str, jax.Array], *,
            spec: lora.LoraSpec, cfg: ModelConfig, decision_tokens: int = 0,
            decision_weight: float = 1.0, kl_weight: float = 0.0
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Weighted mean response cross-entropy of the adapted model, plus
  `kl_weight` times the mean KL(base || tuned) over the harmless rows'
  response positions (the whole next-token distribution kept where the
  base model's answer is the target; 0 skips the base model's pass).

  Args:
    adapter: the trained adapter.
    params: the frozen base parameters.
    batch: Batcher fields: ids, mask, weights [B, T]; harmful [B].
    spec, cfg: the adapter spec and the architecture.
    decision_tokens, decision_weight: the first `decision_tokens` response
      tokens of each row weigh `decision_weight` (`decision_weights`).

  Returns:
    (loss, aux) with aux = {'loss', 'harmful_loss', 'harmless_loss',
    'harmless_kl'}: the loss, the unweighted mean cross-entropy over harmful
    / harmless rows' response tokens, and the mean KL term (0 when
    `kl_weight` is 0).
  """
  ce, logits = token_losses(lora.merge(params, adapter, spec, cfg), cfg,
                            batch)
  w = batch['weights'][:, 1:]  # [B, T-1]
  h = batch['harmful'][:, None]
  mean = lambda x, m: jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)
  loss = mean(ce, decision_weights(w, decision_tokens, decision_weight))
  kl = jnp.zeros((), jnp.float32)
  if kl_weight:
    _, base_logits = token_losses(params, cfg, batch)
    kl = mean(base_kl(jax.lax.stop_gradient(base_logits[:, :-1]),
                      logits[:, :-1]), w * (1.0 - h))
    loss = loss + kl_weight * kl
  return loss, {'loss': loss, 'harmful_loss': mean(ce, w * h),
                'harmless_loss': mean(ce, w * (1.0 - h)), 'harmless_kl': kl}


@functools.partial(jax.jit, static_argnames=('spec', 'cfg', 'optimizer',
                                             'decision_tokens',
                                             'decision_weight', 'kl_weight'))
def train_step(state: dict[str, Any], params, batch: dict[str, jax.Array], *,
               spec: lora.LoraSpec, cfg: ModelConfig,
               optimizer: optax.GradientTransformation,
               decision_tokens: int = 0, decision_weight: float = 1.0,
               kl_weight: float = 0.0):
  """One AdamW step on the adapter; returns (new state, aux of loss_fn)."""
  grads, aux = jax.grad(loss_fn, has_aux=True)(
      state['adapter'], params, batch, spec=spec, cfg=cfg,
      decision_tokens=decision_tokens, decision_weight=decision_weight,
      kl_weight=kl_weight)
  updates, opt_state = optimizer.update(grads, state['opt_state'],
                                        state['adapter'])
  return {'adapter': optax.apply_updates(state['adapter'], updates),
          'opt_state': opt_state, 'step': state['step'] + 1}, aux


def validate(train: ml_collections.ConfigDict) -> None:
  """Raises errors.ConfigError on inconsistent `train` fields."""
  for name in ('steps', 'batch_size', 'log_every', 'checkpoint_every',
               'max_to_keep'):
    if int(train[name]) < 1:
      raise errors.ConfigError(f'train.{name} must be >= 1, got {train[name]}')
  if not 0 <= train.warmup_steps < train.steps:
    raise errors.ConfigError(
        f'train.warmup_steps {train.warmup_steps} must be in [0, train.steps '
        f'{train.steps})')
  if train.decision_tokens < 0 or train.decision_weight <= 0:
    raise errors.ConfigError(
        f'train.decision_tokens ({train.decision_tokens}) must be >= 0 and '
        f'train.decision_weight ({train.decision_weight}) > 0')
  if train.get('kl_weight', 0.0) < 0:
    raise errors.ConfigError(
        f'train.kl_weight must be >= 0, got {train.kl_weight}')
  if train.learning_rate <= 0:
    raise errors.ConfigError(
        f'train.learning_rate must be > 0, got {train.learning_rate}')


def train_adapter(params, cfg: ModelConfig, spec: lora.LoraSpec,
                  examples: Sequence[organism_train.Encoded],
                  train: ml_collections.ConfigDict, *, pad_id: int,
                  max_length: int, checkpoint_dir: str,
                  on_record: Callable[[dict[str, Any]], None] | None = None,
                  stop_after: int | None = None
                  ) -> tuple[lora.Adapter, dict[str, Any]]:
  """Trains (or resumes training) an adapter on `examples`.

  Args:
    params: frozen base parameters.
    cfg: the architecture.
    spec: what to adapt.
    examples: encoded chat examples, each at most `max_length` tokens.
    train: the config's `train` block.
    pad_id: padding id.
    max_length: every batch is padded to this length.
    checkpoint_dir: orbax checkpoints; the latest one is resumed from.
    on_record: called with each logged record ({'step', 'loss', ...}) and
      after every checkpoint with {'step', 'checkpoint': True}.
    stop_after: stop (checkpointed) after this step, as if interrupted.

  Returns:
    (the adapter, {'start_step', 'history'}).
  """
  validate(train)
  batcher = organism_train.Batcher(
      examples, batch_size=train.batch_size, buckets=[max_length],
      pad_id=pad_id, prompt_loss_weight=0.0, seed=train.seed)
  optimizer = make_optimizer(train)
  adapter = lora.init_adapter(spec, cfg, train.seed)
  state = {'adapter': adapter, 'opt_state': optimizer.init(adapter),
           'step': jnp.zeros((), jnp.int32)}
  manager, state, start = resume.open_or_resume(
      os.path.abspath(checkpoint_dir), state, train.max_to_keep)
  if start:
    logging.info('safety tuning: resumed from the checkpoint at step %d',
                 start)
  history, window = [], []
  last = train.steps if stop_after is None else min(stop_after, train.steps)
  began = time.perf_counter()
  for step in range(start, last):
    batch = dataclasses.asdict(batcher.batch(step))
    state, aux = train_step(
        state, params, batch, spec=spec, cfg=cfg, optimizer=optimizer,
        decision_tokens=int(train.decision_tokens),
        decision_weight=float(train.decision_weight),
        kl_weight=float(train.get('kl_weight', 0.0)))
    window.append(aux)
    done = step + 1
    if done % train.log_every == 0 or done == last:
      means = jax.device_get(jax.tree.map(lambda *x: jnp.mean(jnp.stack(x)),
                                          *window))
      record = dict({k: float(v) for k, v in means.items()}, step=done,
                    seconds=time.perf_counter() - began)
      window = []
      history.append(record)
      logging.info('safety tuning step %d/%d: loss %.4f (harmful %.4f, '
                   'harmless %.4f), %.0f s', done, train.steps,
                   record['loss'], record['harmful_loss'],
                   record['harmless_loss'], record['seconds'])
      if on_record:
        on_record(record)
    if done % train.checkpoint_every == 0 or done == last:
      manager.save(done, args=ocp.args.StandardSave(state))
      manager.wait_until_finished()
      if on_record:
        on_record({'step': done, 'checkpoint': True})
  manager.close()
  return state['adapter'], {'start_step': start, 'history': history}
