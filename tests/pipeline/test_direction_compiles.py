"""Stage 1 compiles a fixed number of times, whatever its sizes.

The direction stage of two tiny models, the second with more layers,
candidate positions, candidates (more than a chunk of masks, the last one
ragged) and prompts (more than a chunk, and validation sets of different
lengths), records the same `n_compiles`; each is run after
`jax.clear_caches()`, so that neither reuses what the other compiled.
"""

import jax

import tiny_setup
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import direction
from refusal_jax.pipeline import stage_stats

# (layers, candidate positions (0: all post-instruction tokens),
#  training prompts, validation prompts)
SIZES = ((3, 1, 4, 3), (5, 0, 10, 7))


def _stage1_compiles(root, layers, positions, n_train, n_val):
  config = tiny_setup.build(root, num_layers=layers)
  config.direction.n_positions = positions
  config.data.n_train, config.data.n_val = n_train, n_val
  config.chunks.masks, config.chunks.prompts = 4, 4
  ctx = context_lib.build_context(config)
  jax.clear_caches()
  with stage_stats.StageMeter() as meter:
    summary, arrays = direction.run(ctx)
  return meter.stats['n_compiles'], summary, arrays, ctx


def test_stage1_compiles_as_often_at_every_size(tmp_path):
  counts, rows = [], []
  for i, size in enumerate(SIZES):
    n, summary, arrays, ctx = _stage1_compiles(str(tmp_path / str(i)), *size)
    counts.append(n)
    rows.append(int(summary['n_candidates']))
    assert len(ctx.prompts['harmful_val']) == size[3]
  # the second size really is larger: more candidates than a mask chunk
  assert rows[0] == 3 and rows[1] > 2 * 4
  assert arrays['candidates'].shape[:2] == (ctx.n_eoi, SIZES[1][0])
  assert counts[0] == counts[1], counts
  # mean activations, clean logits, one sweep, and a few eager operations
  assert counts[0] <= 12, counts
