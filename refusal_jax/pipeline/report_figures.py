"""The figures of the run's HTML report (pipeline/report.py).

Each figure is drawn with matplotlib's Agg canvas (no pyplot, no global
state) and returned as {'src': a base64 PNG data URI, 'caption'}, which the
report's template shows as a captioned <img>.
"""

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

MAX_HEATMAP_TOKENS = 64

# The feature sets' labels and colours (the report's tables use them too).
SET_LABELS = {'stage2': 'stage-2 minimal set', 'fm': 'FM set',
              'linear_probe': 'linear-probe set'}
SET_COLORS = {'stage2': '#1f77b4', 'fm': '#d62728', 'linear_probe': '#2ca02c'}


def new_figure(width: float, height: float) -> Figure:
  """A matplotlib Figure on the Agg canvas (no pyplot, no global state)."""
  fig = Figure(figsize=(width, height), dpi=100, layout='constrained')
  FigureCanvasAgg(fig)
  return fig


def png_uri(fig: Figure) -> str:
  """The figure as a `data:image/png;base64,...` URI."""
  buf = io.BytesIO()
  fig.savefig(buf, format='png', metadata={'Software': None})
  return 'data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode()


def image(fig: Figure, caption: str) -> dict:
  """The figure as {'src': data URI, 'caption'}, shown as a captioned <img>."""
  return {'src': png_uri(fig), 'caption': caption}


def plain(text: str) -> str:
  """Text safe for matplotlib labels (no mathtext)."""
  return str(text).replace('$', r'\$')


def token_label(text: str) -> str:
  """A token's text for a plot axis: escapes newlines, marks spaces."""
  text = text.replace('\n', '\\n').replace('\t', '\\t')
  return text if text.strip() else text.replace(' ', '\u00b7') or "''"


def token_texts(tokenizer, ids) -> list[str]:
  """The decoded text of each token id."""
  return [tokenizer.decode([int(i)]) for i in ids]


def score_grid(positions, layers, values) -> tuple[np.ndarray, np.ndarray]:
  """[P, L] grid of candidate scores (NaN where not finite or missing)."""
  pos_axis = np.unique(positions)
  grid = np.full((len(pos_axis), int(layers.max()) + 1), np.nan)
  vals = np.where(np.isfinite(values), values, np.nan)
  grid[np.searchsorted(pos_axis, positions), layers] = vals
  return pos_axis, grid


def candidate_plot(npz: dict, layer, position) -> dict:
  """Heatmaps of bypass / induce / KL over (position, layer)."""
  pos = np.asarray(npz['score_position']).astype(int)
  lay = np.asarray(npz['score_layer']).astype(int)
  panels = (('score_bypass', 'bypass (lower = stronger jailbreak)', 'viridis'),
            ('score_induce', 'induce (harmless + r)', 'magma'),
            ('score_kl', 'KL on harmless (ablated)', 'cividis'))
  fig = new_figure(13, 3.2)
  axes = fig.subplots(1, 3)
  for ax, (key, title, cmap) in zip(axes, panels):
    pos_axis, grid = score_grid(pos, lay, np.asarray(npz[key], np.float64))
    im = ax.imshow(grid, aspect='auto', origin='lower', cmap=cmap,
                   interpolation='nearest')
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('layer')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel('position')
    ax.set_yticks(range(len(pos_axis)), labels=[str(p) for p in pos_axis])
    if layer is not None and position in pos_axis:
      ax.plot(layer, int(np.searchsorted(pos_axis, position)), marker='*',
              color='red', markersize=14, markeredgecolor='white')
  return image(fig, 'Stage 1: refusal-direction candidates by layer and '
               'post-instruction position; the star marks the chosen one.')


def trajectory_plot(traj: list[dict], threshold, order: str) -> dict:
  """Set size vs mean refusal metric and fraction of flipped prompts."""
  size = [t['size'] for t in traj]
  fig = new_figure(7, 3.4)
  ax = fig.subplots()
  ax.plot(size, [t['mean_metric'] for t in traj], 'o-', color='#1f77b4',
          label='mean metric')
  if threshold is not None:
    ax.axhline(threshold, color='#1f77b4', ls=':', lw=1,
               label='flip threshold')
  ax.set_xlabel('set size')
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set_ylabel('mean refusal metric', color='#1f77b4')
  ax2 = ax.twinx()
  ax2.plot(size, [t['flip_fraction'] for t in traj], 's--', color='#d62728',
           label='flip fraction')
  ax2.set_ylabel('fraction of prompts flipped', color='#d62728')
  ax2.set_ylim(-0.05, 1.05)
  if order == 'backward' and len(size) > 1:
    ax.invert_xaxis()
  handles = ax.get_legend_handles_labels()
  handles2 = ax2.get_legend_handles_labels()
  ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=8,
            loc='best')
  return image(fig, f'Stage 2: greedy {order} trajectory (the last point is '
               'the minimal set).')


def fm_plot(s3: dict, npz: dict, sets: dict) -> dict:
  """Losses of both models and their per-feature ablation effects."""
  have_effects = all(k in npz for k in ('pool', 'fm_effect', 'linear_effect'))
  fig = new_figure(13 if have_effects else 9, 3.6)
  axes = fig.subplots(1, 3 if have_effects else 2)
  loss_bars(axes[0], s3)
  loss_curves(axes[1], s3)
  if have_effects:
    effect_scatter(axes[2], npz, sets)
  return image(fig, 'Stage 3: factorization machine vs linear probe: final '
               'losses, validation loss during fitting, and each pool '
               "feature's expected effect of ablation on the metric.")


def loss_bars(ax, s3: dict) -> None:
  """Final train / validation MSE of both models."""
  labels = ('FM train', 'FM val', 'probe train', 'probe val')
  vals = [s3.get(k) for k in ('fm_train_loss', 'fm_val_loss',
                              'linear_train_loss', 'linear_val_loss')]
  vals = [np.nan if v is None else float(v) for v in vals]
  ax.bar(range(4), vals, color=['#f4a6a6', '#d62728', '#a6dba0', '#2ca02c'])
  ax.set_xticks(range(4), labels=labels, fontsize=8)
  if s3.get('y_variance') is not None:
    ax.axhline(s3['y_variance'], color='k', ls=':', lw=1,
               label='val variance of y')
    ax.legend(fontsize=8)
  ax.set_ylabel('MSE')
  ax.set_title('losses', fontsize=10)


def loss_curves(ax, s3: dict) -> None:
  """Train and validation MSE during fitting."""
  for key, label, color in (('fm_history', 'FM', '#d62728'),
                            ('linear_history', 'linear probe', '#2ca02c')):
    hist = np.asarray(s3.get(key) or [], np.float64).reshape(-1, 3)
    if len(hist):
      ax.plot(hist[:, 0], hist[:, 2], color=color, label=f'{label} val')
      ax.plot(hist[:, 0], hist[:, 1], color=color, ls=':', lw=1,
              label=f'{label} train')
  ax.set_xlabel('step')
  ax.set_ylabel('MSE')
  ax.set_title('fitting', fontsize=10)
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=8)


def effect_scatter(ax, npz: dict, sets: dict) -> None:
  """FM vs linear-probe ablation effect of each pool feature."""
  pool = np.asarray(npz['pool']).astype(int)
  fm_eff = np.asarray(npz['fm_effect'], np.float64)
  lin_eff = np.asarray(npz['linear_effect'], np.float64)
  ax.scatter(lin_eff, fm_eff, s=14, color='#bbbbbb', label='pool')
  for name, marker in (('stage2', 'o'), ('fm', 'x'), ('linear_probe', '+')):
    sel = np.isin(pool, sets[name])
    if sel.any():
      style = (dict(facecolors='none', edgecolors=SET_COLORS[name])
               if marker == 'o' else dict(color=SET_COLORS[name]))
      ax.scatter(lin_eff[sel], fm_eff[sel], s=50, marker=marker,
                 label=SET_LABELS[name], **style)
  if len(pool):
    lo = float(min(lin_eff.min(), fm_eff.min()))
    hi = float(max(lin_eff.max(), fm_eff.max()))
    ax.plot([lo, hi], [lo, hi], color='k', lw=0.6, ls=':')
  ax.set_xlabel('linear-probe effect')
  ax.set_ylabel('FM effect')
  ax.set_title('ablation effect per pool feature', fontsize=10)
  ax.legend(fontsize=7)


def token_heatmap(tokenizer, instruction: str, ids, acts, feats) -> dict:
  """Latents (rows) over the prompt's tokens (columns)."""
  ids, acts = ids[-MAX_HEATMAP_TOKENS:], acts[-MAX_HEATMAP_TOKENS:]
  labels = [plain(token_label(t)) for t in token_texts(tokenizer, ids)]
  fig = new_figure(max(5.0, 0.24 * len(ids) + 2),
                   max(2.2, 0.26 * len(feats) + 1.6))
  ax = fig.subplots()
  im = ax.imshow(acts.T, aspect='auto', cmap='Reds', interpolation='nearest',
                 vmin=0.0)
  fig.colorbar(im, ax=ax, label='activation')
  ax.set_xticks(range(len(labels)), labels=labels, rotation=90, fontsize=7)
  ax.set_yticks(range(len(feats)), labels=[str(f) for f in feats],
                fontsize=7)
  ax.set_ylabel('latent')
  title = instruction if len(instruction) < 90 else instruction[:87] + '...'
  ax.set_title(plain(title), fontsize=9)
  return image(fig, f'Latent activations over the tokens of: {instruction}')


def position_plot(fractions: dict) -> dict:
  """Bars of the token-class fractions of redundant firings."""
  fig = new_figure(5, 2.6)
  ax = fig.subplots()
  names = list(fractions)
  ax.bar(names, [fractions[k] for k in names], color='#8c564b')
  ax.set_ylim(0, 1)
  ax.set_ylabel('fraction of firings')
  return image(fig, 'Where the redundant features fire once the FM set is '
               'ablated.')
