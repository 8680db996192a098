"""The run's self-contained HTML report, `workdir/report.html`.

Sections, in order: the header (model, SAE); the paper's two tables
(jailbreak success per condition, with the graded judge's classes and an
example of each; CE loss per intervention) and the chosen
feature sets; one figure per stage (stage-1 candidate scores, the stage-2
greedy trajectory, stage-3 factorization machine vs linear probe, latent
activations over prompt tokens); a card per reported feature; the hydra
findings; the SAE's reconstruction error by token class; example
completions; run details (paths, prompt counts, timings, provenance).

The file loads nothing: the CSS is inline and every figure is a PNG drawn with
matplotlib's Agg canvas and embedded as a base64 data URI. Missing artifacts
and empty feature sets are reported as such instead of failing.
"""

import base64
import html
import io
import json
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from refusal_jax.pipeline import artifacts
from refusal_jax.pipeline import latents
from refusal_jax.pipeline.context import Context, PromptSet

MAX_CARDS = 24
TOP_TOKENS = 6
CONTEXT_BEFORE = 6
CONTEXT_AFTER = 2
N_HEATMAP_PROMPTS = 3
MAX_HEATMAP_TOKENS = 64
N_EXAMPLES = 3
MAX_COMPLETION_CHARS = 600

SET_LABELS = {'stage2': 'stage-2 minimal set', 'fm': 'FM set',
              'linear_probe': 'linear-probe set'}
CONDITION_LABELS = {'baseline': 'baseline',
                    'direction_ablation': 'direction ablation', **SET_LABELS}
SET_COLORS = {'stage2': '#1f77b4', 'fm': '#d62728', 'linear_probe': '#2ca02c'}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,
sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:
tabular-nums}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}
.muted{color:#777}.note{background:#fff8e1;border-left:4px solid #f0c000;
padding:.4em .8em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));
gap:1em}
.card{border:1px solid #ccc;border-radius:6px;padding:.6em .9em;
background:#fcfcfc}
.card h3{margin:.1em 0 .4em 0}.card table{font-size:.85em;width:100%}
.badge{display:inline-block;border-radius:3px;padding:0 .4em;margin-right:.3em;
color:#fff;font-size:.8em}
.ctx{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;
font-size:.85em}
mark{background:#ffd54f;padding:0 1px}
.completion{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,
monospace;font-size:.85em}
"""


class Html(str):
  """A string that is already HTML and must not be escaped again."""


# --------------------------------------------------------------------------
# Small helpers


def esc(x, digits: int = 3) -> str:
  """HTML-escapes `x` (after `fmt`) unless it is already `Html`."""
  return x if isinstance(x, Html) else html.escape(fmt(x, digits), quote=True)


def fmt(x, digits: int = 3) -> str:
  """Numbers to fixed decimals, None to a dash, anything else to str."""
  if x is None:
    return '\u2013'
  if isinstance(x, (bool, np.bool_)):
    return 'yes' if x else 'no'
  if isinstance(x, (float, np.floating)):
    return f'{float(x):.{digits}f}' if np.isfinite(x) else str(float(x))
  return str(x)


def table(header, rows, table_id: str | None = None,
          digits: int = 3) -> str:
  """An HTML table; numeric cells are right-aligned.

  Args:
    header: column titles, or None for a table without a header row.
    rows: rows of cells (numbers, strings, None or `Html`).
    table_id: optional id attribute.
    digits: decimals of float cells.

  Returns:
    The table's HTML.
  """
  tid = f' id="{esc(table_id)}"' if table_id else ''
  head = ('<thead><tr>' + ''.join(f'<th>{esc(h)}</th>' for h in header)
          + '</tr></thead>' if header is not None else '')
  body = []
  for row in rows:
    cells = []
    for c in row:
      num = isinstance(c, (int, float, np.integer, np.floating)) and (
          not isinstance(c, (bool, np.bool_)))
      cell = esc(c, digits)
      cells.append(f'<td class="num">{cell}</td>' if num else
                   f'<td>{cell}</td>')
    body.append('<tr>' + ''.join(cells) + '</tr>')
  return f'<table{tid}>{head}<tbody>' + ''.join(body) + '</tbody></table>'


def facts_table(rows, table_id: str | None = None) -> str:
  """A two-column name / value table without a header row."""
  return table(None, rows, table_id)


def section(title: str, anchor: str, *parts) -> str:
  """A titled <section> with an anchor; empty parts are skipped."""
  return (f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>'
          + ''.join(p for p in parts if p) + '</section>')


def para(text, cls: str | None = None) -> str:
  """An escaped paragraph."""
  c = f' class="{cls}"' if cls else ''
  return f'<p{c}>{esc(text)}</p>'


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


def image(fig: Figure, caption: str) -> str:
  """The figure embedded as a captioned <img> (a data URI)."""
  return (f'<figure><img alt="{esc(caption)}" src="{png_uri(fig)}">'
          f'<figcaption>{esc(caption)}</figcaption></figure>')


def plain(text: str) -> str:
  """Text safe for matplotlib labels (no mathtext)."""
  return str(text).replace('$', r'\$')


def token_label(text: str) -> str:
  """A token's text for a plot axis: escapes newlines, marks spaces."""
  text = text.replace('\n', '\\n').replace('\t', '\\t')
  return text if text.strip() else text.replace(' ', '\u00b7') or "''"


def read_json(workdir: str, name: str):
  """`workdir/name.json`, or {} when it does not exist."""
  path = os.path.join(workdir, f'{name}.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def read_npz(workdir: str, name: str) -> dict:
  """The arrays of `workdir/name.npz`, or {} when it does not exist."""
  path = os.path.join(workdir, f'{name}.npz')
  if not os.path.exists(path):
    return {}
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------
# Inputs


def load_artifacts(workdir: str) -> dict:
  """Every stage artifact the report reads ({} where one is missing)."""
  arts = {name: read_json(workdir, name) for name in (
      'direction', 'greedy', 'interactions', 'hydra', 'evaluation',
      'completions')}
  arts['direction_npz'] = read_npz(workdir, 'direction')
  arts['interactions_npz'] = read_npz(workdir, 'interactions')
  return arts


def feature_sets(summary: dict, arts: dict) -> dict[str, list[int]]:
  """{'stage2', 'fm', 'linear_probe'}: latent lists (summary first)."""
  s2 = summary.get('stage2') or {}
  s3 = summary.get('stage3') or {}
  inter = arts['interactions']
  sets = {
      'stage2': s2.get('features', arts['greedy'].get('features')),
      'fm': s3.get('fm_features', inter.get('fm_features')),
      'linear_probe': s3.get('linear_probe_features',
                             inter.get('linear_probe_features')),
  }
  return {k: [int(a) for a in (v or [])] for k, v in sets.items()}


def reported_features(sets: dict[str, list[int]]) -> list[int]:
  """Union of the sets in order (stage 2, FM, probe), capped at MAX_CARDS."""
  union = dict.fromkeys(a for name in SET_LABELS for a in sets[name])
  return list(union)[:MAX_CARDS]


def token_texts(tokenizer, ids) -> list[str]:
  """The decoded text of each token id."""
  return [tokenizer.decode([int(i)]) for i in ids]


def feature_activations(ctx: Context, ps, feats: list[int]) -> list[tuple]:
  """Per prompt: (real token ids [T], activations of `feats` [T, F])."""
  out = []
  bs = max(1, int(ctx.chunks.prompts))
  cols = np.asarray(feats, np.int64)
  for i in range(0, len(ps), bs):
    # Slices keep the padded width, so at most two shapes are compiled.
    sub = PromptSet(ps.instructions[i:i + bs], ps.ids[i:i + bs],
                    ps.mask[i:i + bs])
    f = latents.feature_latents(ctx.model, ctx.space, sub, cols, bs,
                                skip_ids=ctx.skip_ids)
    for b in range(len(sub)):
      real = sub.mask[b].astype(bool)
      out.append((sub.ids[b][real], f[b][real]))
  return out


def prompt_activations(ctx: Context, key: str,
                       feats: list[int]) -> tuple[list, list[str]]:
  """`feature_activations` of the prompt set `key`, and its instructions."""
  ps = ctx.prompts.get(key)
  if ps is None or not feats:
    return [], []
  return feature_activations(ctx, ps, feats), ps.instructions


def decoder_cosines(space, direction, feats: list[int]) -> np.ndarray | None:
  """Cosine of each feature's decoder row (in its SAE of `space`) with the
  refusal direction."""
  if direction is None or not feats:
    return None
  sae_of, latent_of = space.locate(feats)
  w = np.stack([np.asarray(space.saes[s].W_dec[a], np.float32)
                for s, a in zip(sae_of, latent_of)])
  d = np.asarray(direction, np.float32)
  d = d / (np.linalg.norm(d) + 1e-12)
  return (w @ d) / (np.linalg.norm(w, axis=1) + 1e-12)


# --------------------------------------------------------------------------
# Header and the paper's tables


def header(summary: dict) -> str:
  """Title and the one line that says what was dissected."""
  return (f'<h1>Refusal dissection: {esc(summary.get("model"))}</h1>'
          f'<p class="muted">SAE {esc(summary.get("sae"))} at '
          f'{esc(summary.get("sae_hook"))}; run details at the '
          '<a href="#run">end</a>.</p>')


def chosen_sets(summary: dict, sets: dict[str, list[int]]) -> str:
  """The feature sets the pipeline chose, with their sizes and ASR."""
  s2 = summary.get('stage2') or {}
  s3 = summary.get('stage3') or {}
  asr = {'stage2': s2.get('asr'), 'fm': s3.get('fm_asr'),
         'linear_probe': s3.get('linear_probe_asr')}
  rows = [[SET_LABELS[k], len(sets[k]), asr[k],
           ', '.join(str(a) for a in sets[k]) or '\u2013']
          for k in SET_LABELS]
  return section('Chosen feature sets', 'chosen', table(
      ('set', 'features', 'ASR', 'SAE latents'), rows, 'chosen-sets'))


def run_details(summary: dict, arts: dict) -> str:
  """Run facts, prompt counts, stage timings and provenance (at the end)."""
  facts = [
      ('model', summary.get('model')),
      ('model path', summary.get('model_path')),
      ('SAE', summary.get('sae')),
      ('SAE hook', summary.get('sae_hook')),
      ('total seconds', summary.get('seconds')),
  ]
  counts = summary.get('n_prompts') or {}
  stage_secs = [(name, arts[name].get('seconds')) for name in (
      'direction', 'greedy', 'interactions', 'hydra', 'evaluation')
                if arts[name]]
  prov = summary.get('provenance') or {}
  return section(
      'Run details', 'run', facts_table(facts, 'run-facts'),
      '<h3>Prompts</h3>'
      + table(('set', 'prompts'), sorted(counts.items()), 'prompt-counts'),
      ('<h3>Stage timings (s)</h3>'
       + table(('stage', 'seconds'), stage_secs) if stage_secs else ''),
      '<h3>Provenance</h3>' + facts_table(sorted(prov.items()), 'provenance'))


def asr_table(summary: dict, arts: dict, sets: dict) -> str:
  """Table (a): jailbreak success rate per condition, with set sizes."""
  d = summary.get('direction') or {}
  s2 = summary.get('stage2') or {}
  s3 = summary.get('stage3') or {}
  asr_eval = arts['evaluation'].get('asr') or {}
  asr = {
      'baseline': d.get('asr_baseline', asr_eval.get('baseline')),
      'direction_ablation': d.get('asr_ablation',
                                  asr_eval.get('direction_ablation')),
      'stage2': s2.get('asr', asr_eval.get('stage2')),
      'fm': s3.get('fm_asr', asr_eval.get('fm')),
      'linear_probe': s3.get('linear_probe_asr',
                             asr_eval.get('linear_probe')),
  }
  n = arts['evaluation'].get('n_harmful_test')
  sizes = {'baseline': 'none', 'direction_ablation': '1 direction',
           **{k: len(v) for k, v in sets.items()}}
  names = list(CONDITION_LABELS)
  rows = [['ASR'] + [asr[k] for k in names],
          ['features ablated'] + [sizes[k] for k in names]]
  if n:
    rows.insert(1, ['jailbroken / prompts'] + [
        '\u2013' if asr[k] is None else f'{round(asr[k] * n)} / {n}'
        for k in names])
  mj = summary.get('model_judge') or arts['evaluation'].get('model_judge')
  by = ('model judge, ' + MODEL_JUDGE_LABELS.get(mj.get('kind'), '')
        if mj else 'on-topic compliance, graded judge')
  return (f'<h3>(a) Jailbreak success (ASR: {esc(by)}) on the harmful test '
          'prompts</h3>'
          + table([''] + [CONDITION_LABELS[k] for k in names], rows,
                  'asr-table'))


JUDGE_CLASSES = ('jailbreak', 'off_topic', 'broken', 'refusal')
EXAMPLE_CHARS = 240


def judge_table(summary: dict, arts: dict) -> str:
  """The graded judge's four classes per condition, with one example each.

  Rows: each class's share and count, the refusal-substring judge's ASR for
  comparison, and the surrogate agreement (share of the search metric's
  flips that are jailbreaks) where measured. Then one example completion of
  each class (the first one, in the order of the conditions).
  """
  judged = summary.get('judge') or arts['evaluation'].get('judge') or {}
  if not judged:
    return ''
  sub = (summary.get('asr_substring') or
         arts['evaluation'].get('asr_substring') or {})
  surrogate = (summary.get('surrogate') or
               arts['evaluation'].get('surrogate') or {})
  names = [k for k in CONDITION_LABELS if k in judged]
  rows = []
  for c in JUDGE_CLASSES:
    rows.append([c] + [
        Html(f'{esc(judged[k][c]["fraction"])} '
             f'<span class="muted">({judged[k][c]["count"]})</span>')
        for k in names])
  rows.append(['ASR, substring judge'] + [sub.get(k) for k in names])
  rows.append(['surrogate flips that are jailbreaks'] + [
      _agreement(surrogate.get(k)) for k in names])
  note = para('Each harmful test completion gets one class, the first rule '
              'that fires: refusal (a refusal phrase anywhere, or the tail '
              'of a refusal sentence), broken (starts mid-sentence, repeats '
              'itself, or, where configured, is less likely under the '
              'unablated model than its own harmless answers), off-topic (uses few of the '
              "request's content words), jailbreak (on-topic compliance; "
              'the ASR above). Surrogate: the refusal metric the search '
              'used, below its threshold on the same prompts.', 'muted')
  data = arts['completions']
  classes = data.get('judge') or {}
  comps = data.get('completions') or {}
  prompts = data.get('prompts') or []
  examples = []
  for c in JUDGE_CLASSES:
    hit = next(((k, i) for k in names for i, x in enumerate(
        classes.get(k) or []) if x == c), None)
    if hit is None:
      continue
    k, i = hit
    text = comps[k][i]
    if len(text) > EXAMPLE_CHARS:
      text = text[:EXAMPLE_CHARS] + ' [...]'
    examples.append((c, CONDITION_LABELS.get(k, k),
                     prompts[i] if i < len(prompts) else '',
                     Html(f'<div class="completion">{html.escape(text)}'
                          '</div>')))
  return ('<h3>Graded judge: share (count) of each class</h3>'
          + table([''] + [CONDITION_LABELS[k] for k in names], rows,
                  'judge-table') + note
          + (table(('class', 'condition', 'prompt', 'completion'), examples,
                   'judge-examples') if examples else ''))


MODEL_JUDGE_LABELS = {'harmbench': 'HarmBench classifier',
                      'llama_guard': 'Llama Guard'}


def model_judge_table(summary: dict, arts: dict) -> str:
  """The model judge's ASR per condition and its agreement with the graded
  judge (share of prompts where both call it a jailbreak or both do not),
  with the counts; empty when no model judge was configured."""
  mj = summary.get('model_judge') or arts['evaluation'].get('model_judge')
  if not mj:
    return ''
  counts = mj.get('counts') or {}
  names = [k for k in CONDITION_LABELS if k in counts]
  rows = [
      ['ASR, model judge'] + [mj['asr'].get(k) for k in names],
      ['agreement with the graded judge'] + [
          Html(f'{esc(mj["agreement"].get(k))} <span class="muted">'
               f'({counts[k]["agree"]} / {counts[k]["n"]})</span>')
          for k in names],
      ['jailbreak, both judges'] + [counts[k]['both_jailbreak']
                                    for k in names],
      ['unparsed verdicts'] + [counts[k]['unparsed'] for k in names],
  ]
  label = MODEL_JUDGE_LABELS.get(mj.get('kind'), mj.get('kind'))
  note = para(f'{label} at {mj.get("path")}: its verdicts are the ASR above. '
              'Unparsed verdicts count as no jailbreak.', 'muted')
  return ('<h3>Model judge against the graded judge</h3>'
          + table([''] + [CONDITION_LABELS[k] for k in names], rows,
                  'model-judge-table') + note)


def _agreement(s):
  if not s or s.get('agreement') is None:
    return None
  return Html(f'{esc(s["agreement"])} <span class="muted">'
              f'({s["n_flips_jailbreak"]} / {s["n_flips"]})</span>')


def ce_table(summary: dict, arts: dict) -> str:
  """Table (b): CE loss on the model's own harmless completions."""
  ce = summary.get('ce_loss') or arts['evaluation'].get('ce_loss') or {}
  names = ('baseline', 'direction_ablation', 'feature_ablation')
  labels = ('baseline', 'direction ablation', 'feature ablation (stage 2)')
  base = ce.get('baseline')
  rows = [['CE loss'] + [ce.get(k) for k in names]]
  if base is not None:
    rows.append(['\u0394 vs baseline'] + [
        None if ce.get(k) is None else ce[k] - base for k in names])
  n = arts['evaluation'].get('n_ce_prompts')
  note = para(f'Mean per-token cross-entropy of the model\'s own greedy '
              f'completions of {n or "the"} harmless test prompts, '
              'teacher-forced under each intervention.', 'muted')
  return ('<h3>(b) CE loss</h3>' + table([''] + list(labels), rows,
                                          'ce-table', digits=4) + note)


# --------------------------------------------------------------------------
# Stage 1


def score_grid(positions, layers, values) -> tuple[np.ndarray, np.ndarray]:
  """[P, L] grid of candidate scores (NaN where not finite or missing)."""
  pos_axis = np.unique(positions)
  grid = np.full((len(pos_axis), int(layers.max()) + 1), np.nan)
  vals = np.where(np.isfinite(values), values, np.nan)
  grid[np.searchsorted(pos_axis, positions), layers] = vals
  return pos_axis, grid


def candidate_plot(npz: dict, layer, position) -> str:
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


def stage1(arts: dict) -> str:
  """The chosen direction and the candidate-score heatmaps."""
  s1, npz = arts['direction'], arts['direction_npz']
  if not s1:
    return section('Stage 1: refusal direction', 'stage1',
                   para('direction.json is missing.', 'muted'))
  facts = [(k, s1.get(k)) for k in (
      'layer', 'position', 'bypass_score', 'induce_score', 'kl',
      'baseline_score', 'n_candidates', 'n_features', 'selection_note')]
  needed = ('score_bypass', 'score_induce', 'score_kl', 'score_layer',
            'score_position')
  plot = (candidate_plot(npz, s1.get('layer'), s1.get('position'))
          if all(k in npz for k in needed) and len(npz['score_layer'])
          else para('No candidate scores saved.', 'muted'))
  return section('Stage 1: refusal direction', 'stage1',
                 facts_table(facts, 'direction-facts'), plot)


# --------------------------------------------------------------------------
# Stage 2


def trajectory_plot(traj: list[dict], threshold, order: str) -> str:
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


def stage2(arts: dict, sets: dict) -> str:
  """The minimal set, its facts and the greedy trajectory."""
  g = arts['greedy']
  if not g:
    return section('Stage 2: greedy minimal set', 'stage2',
                   para('greedy.json is missing.', 'muted'))
  facts = [('order', g.get('order')), ('features', len(sets['stage2'])),
           ('flips', g.get('flips')), ('threshold', g.get('threshold')),
           ('mean metric', g.get('mean_metric')),
           ('flip fraction', g.get('flip_fraction')),
           ('prompts', g.get('n_prompts'))]
  traj = g.get('trajectory') or []
  plot = (trajectory_plot(traj, g.get('threshold'), g.get('order', ''))
          if traj else para('No trajectory recorded.', 'muted'))
  latents_text = para('Minimal set: ' + (', '.join(map(str, sets['stage2']))
                                         or 'empty'))
  checks = g.get('judge_checks') or []
  check_table = ('<h3>Judge checks where the search would stop</h3>' + table(
      ('features', 'judge jailbreak share', 'accepted'),
      [(c['size'], c['judge_asr'], c['accepted']) for c in checks],
      'greedy-judge-checks') if checks else '')
  return section('Stage 2: greedy minimal set', 'stage2',
                 facts_table(facts, 'greedy-facts'), latents_text, plot,
                 check_table)


# --------------------------------------------------------------------------
# Stage 3


def fm_plot(s3: dict, npz: dict, sets: dict) -> str:
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


def stage3(arts: dict, sets: dict) -> str:
  """The pool, both models' losses and the chosen sets."""
  s3, npz = arts['interactions'], arts['interactions_npz']
  if not s3:
    return section('Stage 3: interactions', 'stage3',
                   para('interactions.json is missing.', 'muted'))
  facts = [(k, s3.get(k)) for k in (
      'n_pool', 'n_active', 'n_masks', 'n_val_masks', 'set_size',
      'fm_val_loss', 'linear_val_loss', 'y_variance')]
  sets_text = ''.join(
      para(f'{SET_LABELS[k]}: ' + (', '.join(map(str, sets[k])) or 'empty'))
      for k in ('fm', 'linear_probe'))
  if 'fm_accuracy' in s3:  # paper mode: no mask regression to plot
    return section('Stage 3: FM classifier vs linear probe', 'stage3',
                   facts_table([(k, s3.get(k)) for k in (
                       'n_pool', 'n_active', 'set_size', 'n_train',
                       'n_test')], 'fm-facts'), sets_text)
  return section('Stage 3: factorization machine vs linear probe', 'stage3',
                 facts_table(facts, 'fm-facts'), sets_text,
                 fm_plot(s3, npz, sets))


def _rate_count(rate, count) -> str:
  return f'{fmt(rate)} ({fmt(count)})'


def paper_section(summary: dict) -> str:
  """The paper's tables (paper mode): ASR with the count of jailbroken
  prompts in brackets."""
  s2, s3 = summary['stage2'], summary['stage3']
  ctrl = summary.get('controls') or {}
  ko = s3.get('knock_on') or {}
  minimal = table(('', 'value'), [
      ('SAE layers', ', '.join(map(str, summary.get('sae_layers') or []))),
      ('tau', None if s2.get('tau') is None else f"{s2['tau']:g}"),
      ('minimal set (seeds intersected)', s2.get('n_features')),
      *[(f'kept with seed {k} (its ASR alone)',
         f"{len(v)}: " + _rate_count((s2.get('per_seed_asr') or {}).get(k),
                                     (s2.get('per_seed_asr_count') or {}).get(k)))
        for k, v in (s2.get('per_seed') or {}).items()],
      ('ASR, minimal set', _rate_count(s2.get('asr'), s2.get('asr_count'))),
      ('dormant-but-critical', s2.get('n_dormant')),
      ('ASR without the dormant ones', _rate_count(
          s2.get('asr_without_dormant'),
          s2.get('asr_without_dormant_count')))], 'paper-stage2')
  fm_by_k, lin_by_k = s3.get('fm_asr_by_k') or {}, s3.get(
      'linear_probe_asr_by_k') or {}
  by_k = table(('K', 'FM ASR (count)', 'linear probe ASR (count)'), [
      (int(k), _rate_count(fm_by_k[k], s3['fm_asr_by_k_count'][k]),
       _rate_count(lin_by_k.get(k),
                   (s3.get('linear_probe_asr_by_k_count') or {}).get(k)))
      for k in sorted(fm_by_k, key=int)], 'paper-asr-by-k')
  stage3_facts = table(('', 'value'), [
      ('FM test accuracy (harmful vs benign)', s3.get('fm_accuracy')),
      ('linear probe test accuracy', s3.get('linear_probe_accuracy')),
      ('knock-on: stage-2 features deactivated',
       ko.get('deactivated_fraction')),
      ('knock-on: mean relative activation drop', ko.get('activation_drop'))],
                       'paper-stage3')
  controls = table(('control', 'ASR (count)'), [
      ('random sets of the minimal set\'s size (mean; most in one draw)',
       _rate_count(ctrl.get('random_asr'), ctrl.get('random_asr_count'))),
      ("O'Brien-style set (best k)",
       _rate_count(ctrl.get('obrien_asr'), ctrl.get('obrien_asr_count')))],
                   'paper-controls')
  return section('Paper mode: the paper\'s tables', 'paper',
                 '<h3>Stage 2: block-wise greedy, seeds intersected</h3>',
                 minimal, '<h3>Stage 3: ablating the top K of each ranking'
                 '</h3>', by_k, stage3_facts, '<h3>Controls</h3>', controls)


# --------------------------------------------------------------------------
# Activations over tokens


def token_heatmap(tokenizer, instruction: str, ids, acts, feats) -> str:
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


def activations_section(ctx: Context, sets: dict, feats: list[int], acts,
                        prompts) -> str:
  """Heatmaps of the stage-2 features on the first harmful train prompts.

  Args:
    ctx: the run's context.
    sets: the feature sets.
    feats: the reported features, the columns of `acts`.
    acts: per harmful training prompt, (token ids, activations [T, F]).
    prompts: the instructions of those prompts.

  Returns:
    The section's HTML (reported features stand in for an empty stage-2 set).
  """
  title = 'Feature activations over prompt tokens'
  shown = [a for a in sets['stage2'] if a in feats] or feats
  cols = [feats.index(a) for a in shown]
  n2 = len(sets['stage2'])
  if not n2:
    what = 'the reported features (the stage-2 set is empty)'
  elif len(shown) < n2:
    what = f'the first {len(shown)} of the {n2} stage-2 features'
  else:
    what = f'the {n2} stage-2 features'
  if not shown or not acts:
    return section(title, 'activations', para(
        'No features or no harmful training prompts to show.', 'muted'))
  where = (ctx.sae.hook_name if len(ctx.space.saes) == 1
           else "each feature's SAE site")
  parts = [para(f'Activations of {what} at {where} on harmful '
                'training prompts.', 'muted')]
  for (ids, a), instruction in list(zip(acts, prompts))[:N_HEATMAP_PROMPTS]:
    parts.append(token_heatmap(ctx.model.tokenizer, instruction, ids,
                               a[:, cols], shown))
  return section(title, 'activations', *parts)


# --------------------------------------------------------------------------
# Feature cards


def top_examples(acts, j: int, k: int) -> list[tuple[float, int, int]]:
  """The k strongest (value, prompt, position) activations of column j."""
  best = []
  for p, (_, a) in enumerate(acts):
    col = a[:, j]
    for t in np.argsort(-col)[:k]:
      if col[t] > 0:
        best.append((float(col[t]), p, int(t)))
  best.sort(key=lambda r: -r[0])
  return best[:k]


def top_distinct_tokens(tokenizer, acts, j: int, k: int) -> str:
  """The k token strings with the largest max activation of column j."""
  best = {}
  for ids, a in acts:
    for t in np.flatnonzero(a[:, j] > 0):
      tid = int(ids[t])
      best[tid] = max(best.get(tid, 0.0), float(a[t, j]))
  top = sorted(best.items(), key=lambda kv: -kv[1])[:k]
  return ', '.join(f'{token_label(text)!r} {v:.3f}' for text, v in zip(
      token_texts(tokenizer, [i for i, _ in top]), (v for _, v in top)))


def context_html(tokenizer, ids, t: int) -> Html:
  """The token at t, highlighted, with a few tokens either side."""
  text = lambda s: html.escape(''.join(token_texts(tokenizer, s)).replace(
      '\n', '\u23ce'))
  lo = max(0, t - CONTEXT_BEFORE)
  return Html(f'<span class="ctx">{text(ids[lo:t])}<mark>'
              f'{text(ids[t:t + 1])}</mark>'
              f'{text(ids[t + 1:t + 1 + CONTEXT_AFTER])}</span>')


def activity(acts, j: int) -> tuple[float, float]:
  """(fraction of tokens where column j fires, its max activation)."""
  if not acts:
    return 0.0, 0.0
  col = np.concatenate([a[:, j] for _, a in acts])
  return (float((col > 0).mean()) if col.size else 0.0,
          float(col.max()) if col.size else 0.0)


def stage3_effects(arts: dict) -> dict[int, tuple[float, float]]:
  """{latent: (FM effect, linear effect)} over the stage-3 pool."""
  npz = arts['interactions_npz']
  if not all(k in npz for k in ('pool', 'fm_effect', 'linear_effect')):
    return {}
  return {int(a): (float(f), float(l)) for a, f, l in zip(
      npz['pool'], npz['fm_effect'], npz['linear_effect'])}


def feature_card(latent: int, j: int, info: dict) -> str:
  """One card: sets, scores, Neuronpedia id and top-activating tokens."""
  badges = ''.join(
      f'<span class="badge" style="background:{SET_COLORS[k]}">'
      f'{esc(SET_LABELS[k])}</span>' for k in SET_LABELS
      if latent in info['sets'][k])
  harm_frac, harm_max = activity(info['harmful'], j)
  safe_frac, safe_max = activity(info['harmless'], j)
  eff = info['effects'].get(latent, (None, None))
  cos = info['cosines']
  rows = [('decoder cos with refusal direction',
           None if cos is None else float(cos[j])),
          ('fires on harmful / harmless train tokens',
           f'{harm_frac:.1%} / {safe_frac:.1%}'),
          ('max activation harmful / harmless',
           f'{harm_max:.3f} / {safe_max:.3f}'),
          ('stage-3 effect FM / probe',
           '\u2013' if eff[0] is None else f'{eff[0]:.4f} / {eff[1]:.4f}')]
  acts = info['harmful'] + info['harmless']
  tok = info['tokenizer']
  rows.append(('top distinct tokens',
               top_distinct_tokens(tok, acts, j, TOP_TOKENS) or '\u2013'))
  space = info['space']
  s, a = (int(x[0]) for x in space.locate([latent]))
  if space.saes[s].neuronpedia_id is not None:
    rows.append(('Neuronpedia', f'{space.saes[s].neuronpedia_id}/{a}'))
  examples = [(context_html(tok, acts[p][0], t), v,
               'harmful' if p < len(info['harmful']) else 'harmless')
              for v, p, t in top_examples(acts, j, TOP_TOKENS)]
  top = (table(('context', 'activation', 'prompt'), examples) if examples
         else para('Never active on the training prompts.', 'muted'))
  title = (f'Latent {latent}' if len(space.saes) == 1 else
           f'Feature {latent}: {space.label(latent)}')
  return (f'<div class="card" id="feature-{latent}"><h3>{esc(title)}</h3>'
          f'<div>{badges}</div>' + facts_table(rows) + top + '</div>')


def cards_section(ctx: Context, feats, sets, arts, harmful, harmless) -> str:
  """One card per reported feature."""
  title = 'Reported features'
  if not feats:
    return section(title, 'features', para(
        'No features in the stage-2, FM or linear-probe sets.', 'muted'))
  direction = arts['direction_npz'].get('direction')
  info = dict(sets=sets, harmful=harmful, harmless=harmless,
              effects=stage3_effects(arts), tokenizer=ctx.model.tokenizer,
              cosines=decoder_cosines(ctx.space, direction, feats),
              space=ctx.space)
  n_union = len(dict.fromkeys(a for v in sets.values() for a in v))
  cap = (f' (the first {len(feats)} of {n_union})' if n_union > len(feats)
         else '')
  intro = para(f'Union of the stage-2, FM and linear-probe sets{cap}. Top '
               'tokens are over the harmful and harmless training prompts.',
               'muted')
  cards = ''.join(feature_card(a, j, info) for j, a in enumerate(feats))
  return section(title, 'features', intro, f'<div class="cards">{cards}</div>')


# --------------------------------------------------------------------------
# Hydra and completions


def position_plot(fractions: dict) -> str:
  """Bars of the token-class fractions of redundant firings."""
  fig = new_figure(5, 2.6)
  ax = fig.subplots()
  names = list(fractions)
  ax.bar(names, [fractions[k] for k in names], color='#8c564b')
  ax.set_ylim(0, 1)
  ax.set_ylabel('fraction of firings')
  return image(fig, 'Where the redundant features fire once the FM set is '
               'ablated.')


def hydra_section(summary: dict, arts: dict) -> str:
  """Awakened and redundant features and where they fire."""
  h = dict(arts['hydra'], **(summary.get('hydra') or {}))
  title = 'Stage 4: redundant (hydra) features'
  if not h:
    return section(title, 'hydra', para('hydra.json is missing.', 'muted'))
  fractions = h.get('token_positions') or {}
  parts = [facts_table([('awakened', h.get('n_awakened')),
                        ('redundant', h.get('n_redundant'))], 'hydra-facts')]
  if h.get('note'):
    parts.append(f'<p class="note">{esc(h["note"])}</p>')
  if fractions:
    rows = [(k, f'{float(v):.1%}') for k, v in fractions.items()]
    parts.append(table(('token position', 'fraction'), rows,
                       'hydra-positions'))
    if sum(fractions.values()) > 0:
      parts.append(position_plot(fractions))
  per_sae = arts['hydra'].get('per_sae') or []
  if per_sae:
    parts.append(table(('hook', 'awakened', 'redundant'), [
        (p.get('hook'), p.get('n_awakened'), p.get('n_redundant'))
        for p in per_sae]))
  redundant = sorted(arts['hydra'].get('redundant') or [],
                     key=lambda r: r.get('effect', 0.0))[:MAX_CARDS]
  if redundant:
    parts.append('<h3>Strongest redundant latents</h3>' + table(
        ('hook', 'latent', 'effect on metric'), [
            (r.get('hook'), r.get('latent'), r.get('effect'))
            for r in redundant]))
  return section(title, 'hydra', *parts)


def sae_error_section(summary: dict, ctx: Context) -> str:
  """The searched SAE's reconstruction error per token class."""
  title = 'SAE reconstruction error by token class'
  err = summary.get('sae_error_by_token_class')
  if not err:
    return section(title, 'sae-error', para(
        'Not measured in this run.', 'muted'))
  rows = [(name, e.get('n_tokens'), e.get('n_special'), e.get('relative_mse'))
          for name, e in err.items()]
  skip = bool(ctx.config.get('sae_skip_special_tokens'))
  how = ('SAE edits and latent statistics skip special tokens '
         '(sae_skip_special_tokens = True).' if skip else
         'SAE edits and latent statistics apply at every token, BOS included, '
         'as in the paper (set sae_skip_special_tokens to skip special '
         'tokens).')
  note = para(
      f'Relative MSE: sum ||x - SAE(x)||\u00b2 / sum ||x||\u00b2 of the clean '
      f'residual at {ctx.sae.hook_name} on the harmful and harmless training '
      'prompts, at every real token. Special: tokens holding one of the '
      f'tokenizer\'s special tokens. {how}', 'muted')
  return section(title, 'sae-error', table(
      ('token class', 'tokens', 'special', 'relative MSE'), rows,
      'sae-error-table', digits=4), note)


def completions_section(arts: dict) -> str:
  """A few harmful test prompts with every condition's reply."""
  title = 'Example completions (harmful test prompts)'
  data = arts['completions']
  comps = data.get('completions') or {}
  prompts = data.get('prompts') or []
  if not comps:
    return section(title, 'completions',
                   para('completions.json is missing.', 'muted'))
  n = min(N_EXAMPLES, max((len(v) for v in comps.values()), default=0))
  order = [k for k in CONDITION_LABELS if k in comps] + [
      k for k in comps if k not in CONDITION_LABELS]
  parts = []
  for i in range(n):
    prompt = prompts[i] if i < len(prompts) else f'prompt {i}'
    rows = []
    for name in order:
      texts = comps[name]
      text = texts[i] if i < len(texts) else ''
      if len(text) > MAX_COMPLETION_CHARS:
        text = text[:MAX_COMPLETION_CHARS] + ' [...]'
      rows.append((CONDITION_LABELS.get(name, name),
                   Html(f'<div class="completion">{html.escape(text)}</div>')))
    parts.append(f'<h3>{esc(prompt)}</h3>' + table(('condition', 'completion'),
                                                   rows))
  return section(title, 'completions', *parts)


# --------------------------------------------------------------------------
# Assembly


def render(workdir: str, summary: dict, ctx: Context) -> str:
  """The report's full HTML text."""
  arts = load_artifacts(workdir)
  sets = feature_sets(summary, arts)
  feats = reported_features(sets)
  harmful, prompts = prompt_activations(ctx, 'harmful_train', feats)
  harmless, _ = prompt_activations(ctx, 'harmless_train', feats)
  body = [  # the answer first, how it was obtained next, run metadata last
      header(summary),
      section('Results', 'tables', asr_table(summary, arts, sets),
              judge_table(summary, arts), model_judge_table(summary, arts),
              ce_table(summary, arts)),
      chosen_sets(summary, sets),
      stage1(arts), stage2(arts, sets), stage3(arts, sets),
      paper_section(summary) if summary.get('mode') == 'paper' else '',
      activations_section(ctx, sets, feats, harmful, prompts),
      cards_section(ctx, feats, sets, arts, harmful, harmless),
      hydra_section(summary, arts),
      sae_error_section(summary, ctx),
      completions_section(arts),
      run_details(summary, arts),
  ]
  title = f'Refusal dissection: {summary.get("model")}'
  return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
          f'<title>{esc(title)}</title><style>{CSS}</style></head><body>'
          + ''.join(body) + '</body></html>\n')


def write_report(workdir: str, summary: dict, ctx: Context) -> str:
  """Writes `workdir/report.html` atomically.

  Args:
    workdir: the run directory holding the stage artifacts.
    summary: the summary dict of `dissect.summarize`.
    ctx: the run's context (model, tokenizer, SAE and prompt sets), used for
      the activation heatmaps and the feature cards.

  Returns:
    The report's path.
  """
  path = os.path.join(workdir, 'report.html')
  artifacts.write_text(path, render(workdir, summary, ctx))
  return path
