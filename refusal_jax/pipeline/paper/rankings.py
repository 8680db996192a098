"""Stage 3 as the paper ran it: rank the pool by classifiers of prompt type.

The pool's activations on harmful and benign prompts are summarised per
prompt (`activity.per_prompt`); an FM and a logistic-regression probe are
fitted to tell the two apart (refusal_jax/fm/classifier.py: the model, the
split and the importance rules); each gives a ranking of the pool, whose top
K the caller ablates over `top_k.k_grid` (`top_k.asr_by_k`). The keyword
arguments are the fields of `config.paper.classifier`
(configs/paper_mode.py), so `rank_pool(acts, labels, mask=mask,
**config.paper.classifier)` runs it as configured.

Axis letters: P prompts, T tokens, I pool features.
"""

import numpy as np

from refusal_jax.fm import classifier
from refusal_jax.pipeline.paper import activity


def rank_pool(acts, labels, *, mask=None, token_reduce: str = 'max',
              embedding_dim: int = 20, lr: float = 1e-3, epochs: int = 20,
              batch_size: int = 32, fm_l2: float = 0.0,
              probe_l2: float = 1e-4, test_fraction: float = 0.2,
              seed: int = 0) -> tuple[dict, dict]:
  """Fits the FM and the probe on the pool's activations and ranks the pool.

  Args:
    acts: [P, T, I] or [P, I] activations of the pool's features on the
      harmful and benign prompts.
    labels: [P] 1 = harmful, 0 = benign.
    mask: [P, T] real tokens (for token_reduce 'mean').
    token_reduce: per-prompt summary, 'max' or 'mean'.
    embedding_dim: the FM's rank R.
    lr, epochs, batch_size, test_fraction, seed: as `classifier.fit`, for
      both models.
    fm_l2: the FM's L2 weight.
    probe_l2: the probe's L2 weight.

  Returns:
    (summary, arrays). summary: {'fm_test_accuracy', 'fm_train_accuracy',
    'fm_test_loss', 'probe_test_accuracy', 'probe_train_accuracy',
    'probe_test_loss', 'fm_ranking', 'probe_ranking' (pool indices, most
    important first), 'n_train', 'n_test', 'fm_history', 'probe_history'}.
    arrays: {'fm_importance', 'probe_importance', 'fm_w', 'fm_v', 'probe_w',
    'scale', 'train_index', 'test_index'}.
  """
  x = activity.per_prompt(acts, token_reduce, mask)
  kw = dict(lr=lr, epochs=epochs, batch_size=batch_size,
            test_fraction=test_fraction, seed=seed)
  fm_fit = classifier.fit(x, labels, rank=embedding_dim, l2=fm_l2, **kw)
  probe = classifier.fit(x, labels, rank=0, l2=probe_l2, **kw)
  fm_imp = classifier.fm_importance(fm_fit, x)
  probe_imp = classifier.probe_importance(probe)
  summary = dict(
      fm_test_accuracy=fm_fit.test_accuracy,
      fm_train_accuracy=fm_fit.train_accuracy, fm_test_loss=fm_fit.test_loss,
      probe_test_accuracy=probe.test_accuracy,
      probe_train_accuracy=probe.train_accuracy,
      probe_test_loss=probe.test_loss,
      fm_ranking=classifier.ranking(fm_imp),
      probe_ranking=classifier.ranking(probe_imp),
      n_train=int(len(fm_fit.train_index)),
      n_test=int(len(fm_fit.test_index)),
      fm_history=fm_fit.history, probe_history=probe.history)
  arrays = dict(fm_importance=fm_imp, probe_importance=probe_imp,
                fm_w=fm_fit.params['w'], fm_v=fm_fit.params['v'],
                probe_w=probe.params['w'], scale=fm_fit.scale,
                train_index=fm_fit.train_index,
                test_index=fm_fit.test_index)
  return summary, arrays
