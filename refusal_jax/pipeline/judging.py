"""The model judge in the pipeline: loaded once, batched, released after.

`ModelJudge(ctx)` stands for the classifier at `judge.model_path`
(`data.model_judge`: HarmBench's Llama-2 classifier or Llama-Guard-3, kind
`judge.model_kind`). It loads the checkpoint with `load_model` on its first
verdict, in the run's dtype and mesh, runs its prompts in batches through the
same generation code as the judged model (`evaluation.generate`: halved and
retried on out-of-memory), and drops it on `close()` (or at the end of a
`with` block). Without `judge.model_path` it is `configured = False` and
gives no verdicts. Verdicts are memoised like every unit of work, so a
resumed run that has them all never loads the judge.
"""

import os

import numpy as np
from absl import logging

from refusal_jax import errors
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data import model_judge
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline.context import Context, PromptSet

# The judge's generations in ctx.chunk_sizes (halved on out-of-memory apart
# from the judged model's).
JUDGE_OP = 'evaluation/model_judge'

# Verdicts as stored in a memo: jailbreak, none, unparsed.
_CODES = {True: 1, False: 0, None: -1}
_VERDICTS = {v: k for k, v in _CODES.items()}


def check_config(config) -> None:
  """Checks `judge.model_kind` and `judge.model_path` before a run starts.

  Raises:
    errors.ConfigError: an unknown kind, or a model path that is not a
      checkpoint folder.
  """
  j = config.judge
  if not j.get('model_path'):
    return
  model_judge.check_kind(j.model_kind)
  if not os.path.isfile(os.path.join(j.model_path, 'config.json')):
    raise errors.ConfigError(
        f'judge.model_path {j.model_path} is not a checkpoint folder (no '
        'config.json); pass the local folder of the judge model')


class ModelJudge:
  """The configured model judge of a run (see the module docstring).

  Attributes:
    ctx: the run's context (dtype, mesh, chunk sizes).
    path: `judge.model_path` ('' when not configured).
    kind: `judge.model_kind`.
  """

  def __init__(self, ctx: Context):
    self.ctx = ctx
    j = ctx.config.judge
    self.path = j.get('model_path') or ''
    self.kind = j.get('model_kind') or model_judge.HARMBENCH
    if self.path:
      model_judge.check_kind(self.kind)
    self._model = None

  @property
  def configured(self) -> bool:
    return bool(self.path)

  def __enter__(self) -> 'ModelJudge':
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    """Releases the judge's parameters (loaded again if asked once more)."""
    if self._model is not None:
      logging.info('model judge: released %s', self.path)
    self._model = None

  def model(self):
    """The loaded judge model (loaded on first use)."""
    if self._model is None:
      logging.info('model judge: loading %s (%s)', self.path, self.kind)
      model = load_model(self.path, dtype=self.ctx.model.dtype,
                         mesh=self.ctx.mesh)
      if model.tokenizer is None:
        raise errors.CheckpointError(
            f'{self.path} has no tokenizer files; the model judge needs its '
            'tokenizer saved with it')
      self._model = model
    return self._model

  def verdicts(self, requests, completions, memo,
               key: str) -> list[bool | None] | None:
    """The judge's verdict per (request, completion); None if unconfigured.

    Args:
      requests: the harmful requests.
      completions: the judged model's answers.
      memo: the stage's memo; the verdicts are stored under `key`.
      key: the unit of work's name.
    """
    if not self.configured:
      return None
    codes = memo(key, lambda: dict(v=np.asarray(
        [_CODES[v] for v in self._run(requests, completions)], np.int8)))['v']
    return [_VERDICTS[int(c)] for c in codes]

  def _run(self, requests, completions) -> list[bool | None]:
    model = self.model()
    ids, mask = model_judge.encode(
        self.kind, model.tokenizer, requests, completions,
        bos_id=model.config.bos_token_id,
        max_length=model.config.max_position_embeddings)
    # Widths rounded up to a power of two: the conditions' judge prompts
    # share a few compiled generations instead of one per width.
    width = min(1 << max(0, ids.shape[1] - 1).bit_length(),
                max(ids.shape[1], model.config.max_position_embeddings))
    ps = evaluation.widen(PromptSet(list(requests), ids, mask), width)
    tokens = evaluation.generate(
        self.ctx, ps, None, model_judge.NEW_TOKENS[self.kind], model=model,
        op=JUDGE_OP)
    return [model_judge.parse_verdict(self.kind, t)
            for t in evaluation.decode(self.ctx, tokens, model=model)]
