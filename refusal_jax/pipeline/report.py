"""The run's self-contained HTML report, `workdir/report.html`.

Sections, in order: the header (model, SAE); the paper's two tables
(jailbreak success per condition, with the graded judge's classes and an
example of each; CE loss per intervention) and the chosen
feature sets; one figure per stage (stage-1 candidate scores, the stage-2
greedy trajectory, stage-3 factorization machine vs linear probe, latent
activations over prompt tokens); a card per reported feature; the hydra
findings; the SAE's reconstruction error by token class; example
completions; run details (paths, prompt counts, timings, provenance).

`page` gathers what the report shows into one dict (tables as header and
rows, figures as data URIs); the jinja2 template
refusal_jax/pipeline/templates/report.html.j2, shipped as package data, lays
it out, with autoescaping on. The figures are drawn in report_figures.py,
the reported features' activations and card statistics computed in
report_activations.py.

The file loads nothing: the CSS is inline and every figure is a PNG drawn
with matplotlib's Agg canvas and embedded as a base64 data URI. Missing
artifacts and empty feature sets are reported as such instead of failing.
"""

import functools
import html
import json
import os

import jinja2
import markupsafe
import numpy as np

from refusal_jax import package_files
from refusal_jax.pipeline import artifacts
from refusal_jax.pipeline import report_activations as activations
from refusal_jax.pipeline import report_figures as figures
from refusal_jax.pipeline.context import Context

MAX_CARDS = 24
TOP_TOKENS = 6
N_HEATMAP_PROMPTS = 3
N_EXAMPLES = 3
MAX_COMPLETION_CHARS = 600
TEMPLATE = 'pipeline/templates/report.html.j2'

SET_LABELS = figures.SET_LABELS
CONDITION_LABELS = {'baseline': 'baseline',
                    'direction_ablation': 'direction ablation', **SET_LABELS}
SET_COLORS = figures.SET_COLORS


# --------------------------------------------------------------------------
# Small helpers


def fmt(x, digits: int = 3) -> str:
  """Numbers to fixed decimals, None to a dash, anything else to str."""
  if x is None:
    return '\u2013'
  if isinstance(x, (bool, np.bool_)):
    return 'yes' if x else 'no'
  if isinstance(x, (float, np.floating)):
    return f'{float(x):.{digits}f}' if np.isfinite(x) else str(float(x))
  return str(x)


def is_number(x) -> bool:
  """Whether a table cell is numeric (right-aligned); bools are not."""
  return isinstance(x, (int, float, np.integer, np.floating)) and (
      not isinstance(x, (bool, np.bool_)))


def table(header, rows, table_id: str | None = None,
          digits: int = 3) -> dict:
  """A table for the template.

  Args:
    header: column titles, or None for a table without a header row.
    rows: rows of cells: numbers, strings, None, or the dicts of `detail`,
      `completion` and `report_activations.context`.
    table_id: optional id attribute.
    digits: decimals of float cells.

  Returns:
    {'id', 'header', 'rows', 'digits'}.
  """
  return {'id': table_id, 'header': None if header is None else list(header),
          'rows': [list(row) for row in rows], 'digits': digits}


def facts_table(rows, table_id: str | None = None) -> dict:
  """A two-column name / value table without a header row."""
  return table(None, rows, table_id)


def detail(value, text: str) -> dict:
  """A cell: `value` followed by a muted `(text)`."""
  return {'value': value, 'detail': text}


def completion(text: str) -> dict:
  """A cell holding a model's reply (whitespace kept)."""
  return {'completion': text}


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


# --------------------------------------------------------------------------
# The paper's tables and the chosen sets


def chosen_sets(summary: dict, sets: dict[str, list[int]]) -> dict:
  """The feature sets the pipeline chose, with their sizes and ASR."""
  s2 = summary.get('stage2') or {}
  s3 = summary.get('stage3') or {}
  asr = {'stage2': s2.get('asr'), 'fm': s3.get('fm_asr'),
         'linear_probe': s3.get('linear_probe_asr')}
  rows = [[SET_LABELS[k], len(sets[k]), asr[k],
           ', '.join(str(a) for a in sets[k]) or '\u2013']
          for k in SET_LABELS]
  return table(('set', 'features', 'ASR', 'SAE latents'), rows,
               'chosen-sets')


def run_details(summary: dict, arts: dict) -> dict:
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
  return {'facts': facts_table(facts, 'run-facts'),
          'prompts': table(('set', 'prompts'), sorted(counts.items()),
                           'prompt-counts'),
          'timings': (table(('stage', 'seconds'), stage_secs)
                      if stage_secs else None),
          'provenance': facts_table(sorted(prov.items()), 'provenance')}


def asr_table(summary: dict, arts: dict, sets: dict) -> dict:
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
  return {'judge': by, 'table': table(
      [''] + [CONDITION_LABELS[k] for k in names], rows, 'asr-table')}


JUDGE_CLASSES = ('jailbreak', 'off_topic', 'broken', 'refusal')
EXAMPLE_CHARS = 240


def judge_table(summary: dict, arts: dict) -> dict | None:
  """The graded judge's four classes per condition, with one example each.

  Rows: each class's share and count, the refusal-substring judge's ASR for
  comparison, and the surrogate agreement (share of the search metric's
  flips that are jailbreaks) where measured. Then one example completion of
  each class (the first one, in the order of the conditions).
  """
  judged = summary.get('judge') or arts['evaluation'].get('judge') or {}
  if not judged:
    return None
  sub = (summary.get('asr_substring') or
         arts['evaluation'].get('asr_substring') or {})
  surrogate = (summary.get('surrogate') or
               arts['evaluation'].get('surrogate') or {})
  names = [k for k in CONDITION_LABELS if k in judged]
  rows = []
  for c in JUDGE_CLASSES:
    rows.append([c] + [detail(judged[k][c]['fraction'],
                              f'{judged[k][c]["count"]}') for k in names])
  rows.append(['ASR, substring judge'] + [sub.get(k) for k in names])
  rows.append(['surrogate flips that are jailbreaks'] + [
      _agreement(surrogate.get(k)) for k in names])
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
                     completion(text)))
  return {'table': table([''] + [CONDITION_LABELS[k] for k in names], rows,
                         'judge-table'),
          'examples': (table(('class', 'condition', 'prompt', 'completion'),
                             examples, 'judge-examples')
                       if examples else None)}


MODEL_JUDGE_LABELS = {'harmbench': 'HarmBench classifier',
                      'llama_guard': 'Llama Guard'}


def model_judge_table(summary: dict, arts: dict) -> dict | None:
  """The model judge's ASR per condition and its agreement with the graded
  judge (share of prompts where both call it a jailbreak or both do not),
  with the counts; None when no model judge was configured."""
  mj = summary.get('model_judge') or arts['evaluation'].get('model_judge')
  if not mj:
    return None
  counts = mj.get('counts') or {}
  names = [k for k in CONDITION_LABELS if k in counts]
  rows = [
      ['ASR, model judge'] + [mj['asr'].get(k) for k in names],
      ['agreement with the graded judge'] + [
          detail(mj['agreement'].get(k),
                 f'{counts[k]["agree"]} / {counts[k]["n"]}')
          for k in names],
      ['jailbreak, both judges'] + [counts[k]['both_jailbreak']
                                    for k in names],
      ['unparsed verdicts'] + [counts[k]['unparsed'] for k in names],
  ]
  label = MODEL_JUDGE_LABELS.get(mj.get('kind'), mj.get('kind'))
  return {'table': table([''] + [CONDITION_LABELS[k] for k in names], rows,
                         'model-judge-table'),
          'label': f'{label}', 'path': f'{mj.get("path")}'}


def _agreement(s):
  if not s or s.get('agreement') is None:
    return None
  return detail(s['agreement'], f'{s["n_flips_jailbreak"]} / {s["n_flips"]}')


def ce_table(summary: dict, arts: dict) -> dict:
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
  return {'table': table([''] + list(labels), rows, 'ce-table', digits=4),
          'n_prompts': f'{n or "the"}'}


# --------------------------------------------------------------------------
# Stage 1


def stage1(arts: dict) -> dict | None:
  """The chosen direction and the candidate-score heatmaps (None: missing)."""
  s1, npz = arts['direction'], arts['direction_npz']
  if not s1:
    return None
  facts = [(k, s1.get(k)) for k in (
      'layer', 'position', 'bypass_score', 'induce_score', 'kl',
      'baseline_score', 'n_candidates', 'n_features', 'selection_note')]
  needed = ('score_bypass', 'score_induce', 'score_kl', 'score_layer',
            'score_position')
  plot = (figures.candidate_plot(npz, s1.get('layer'), s1.get('position'))
          if all(k in npz for k in needed) and len(npz['score_layer'])
          else None)
  return {'facts': facts_table(facts, 'direction-facts'), 'plot': plot}


# --------------------------------------------------------------------------
# Stage 2


def stage2(arts: dict, sets: dict) -> dict | None:
  """The minimal set, its facts and the greedy trajectory (None: missing)."""
  g = arts['greedy']
  if not g:
    return None
  facts = [('order', g.get('order')), ('features', len(sets['stage2'])),
           ('flips', g.get('flips')), ('threshold', g.get('threshold')),
           ('mean metric', g.get('mean_metric')),
           ('flip fraction', g.get('flip_fraction')),
           ('prompts', g.get('n_prompts'))]
  traj = g.get('trajectory') or []
  checks = g.get('judge_checks') or []
  return {
      'facts': facts_table(facts, 'greedy-facts'),
      'minimal': ', '.join(map(str, sets['stage2'])) or 'empty',
      'plot': (figures.trajectory_plot(traj, g.get('threshold'),
                                       g.get('order', '')) if traj else None),
      'checks': table(
          ('features', 'judge jailbreak share', 'accepted'),
          [(c['size'], c['judge_asr'], c['accepted']) for c in checks],
          'greedy-judge-checks') if checks else None}


# --------------------------------------------------------------------------
# Stage 3


def stage3(arts: dict, sets: dict) -> dict | None:
  """The pool, both models' losses and the chosen sets (None: missing)."""
  s3, npz = arts['interactions'], arts['interactions_npz']
  if not s3:
    return None
  set_lines = [(SET_LABELS[k], ', '.join(map(str, sets[k])) or 'empty')
               for k in ('fm', 'linear_probe')]
  if 'fm_accuracy' in s3:  # paper mode: no mask regression to plot
    return {'paper': True, 'sets': set_lines, 'plot': None,
            'facts': facts_table([(k, s3.get(k)) for k in (
                'n_pool', 'n_active', 'set_size', 'n_train', 'n_test')],
                                 'fm-facts')}
  facts = [(k, s3.get(k)) for k in (
      'n_pool', 'n_active', 'n_masks', 'n_val_masks', 'set_size',
      'fm_val_loss', 'linear_val_loss', 'y_variance')]
  return {'paper': False, 'sets': set_lines,
          'plot': figures.fm_plot(s3, npz, sets),
          'facts': facts_table(facts, 'fm-facts')}


def _rate_count(rate, count) -> str:
  return f'{fmt(rate)} ({fmt(count)})'


def paper_section(summary: dict) -> dict:
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
         f"{len(v)}: " + _rate_count(
             (s2.get('per_seed_asr') or {}).get(k),
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
      ('classifier prompts: harmful / benign (benign source); train / test',
       _fit_sizes(s3)),
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
  return {'minimal': minimal, 'by_k': by_k, 'stage3': stage3_facts,
          'controls': controls}


# --------------------------------------------------------------------------
# Activations over tokens


def activations_section(ctx: Context, sets: dict, feats: list[int], acts,
                        prompts) -> dict | None:
  """Heatmaps of the stage-2 features on the first harmful train prompts.

  Args:
    ctx: the run's context.
    sets: the feature sets.
    feats: the reported features, the columns of `acts`.
    acts: per harmful training prompt, (token ids, activations [T, F]).
    prompts: the instructions of those prompts.

  Returns:
    {'what', 'where', 'figures'} (reported features stand in for an empty
    stage-2 set), or None when there is nothing to show.
  """
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
    return None
  where = (ctx.sae.hook_name if len(ctx.space.saes) == 1
           else "each feature's SAE site")
  heatmaps = [figures.token_heatmap(ctx.model.tokenizer, instruction, ids,
                                    a[:, cols], shown)
              for (ids, a), instruction in
              list(zip(acts, prompts))[:N_HEATMAP_PROMPTS]]
  return {'what': what, 'where': f'{where}', 'figures': heatmaps}


# --------------------------------------------------------------------------
# Feature cards


def feature_card(latent: int, j: int, info: dict) -> dict:
  """One card: sets, scores, Neuronpedia id and top-activating tokens."""
  badges = [{'color': SET_COLORS[k], 'label': SET_LABELS[k]}
            for k in SET_LABELS if latent in info['sets'][k]]
  harm_frac, harm_max = activations.activity(info['harmful'], j)
  safe_frac, safe_max = activations.activity(info['harmless'], j)
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
  rows.append(('top distinct tokens', activations.top_distinct_tokens(
      tok, acts, j, TOP_TOKENS) or '\u2013'))
  space = info['space']
  s, a = (int(x[0]) for x in space.locate([latent]))
  if space.saes[s].neuronpedia_id is not None:
    rows.append(('Neuronpedia', f'{space.saes[s].neuronpedia_id}/{a}'))
  examples = [(activations.context(tok, acts[p][0], t), v,
               'harmful' if p < len(info['harmful']) else 'harmless')
              for v, p, t in activations.top_examples(acts, j, TOP_TOKENS)]
  title = (f'Latent {latent}' if len(space.saes) == 1 else
           f'Feature {latent}: {space.label(latent)}')
  return {'latent': latent, 'title': title, 'badges': badges,
          'facts': facts_table(rows),
          'examples': (table(('context', 'activation', 'prompt'), examples)
                       if examples else None)}


def cards_section(ctx: Context, feats, sets, arts, harmful,
                  harmless) -> dict | None:
  """One card per reported feature (None: no features)."""
  if not feats:
    return None
  direction = arts['direction_npz'].get('direction')
  info = dict(sets=sets, harmful=harmful, harmless=harmless,
              effects=activations.stage3_effects(arts),
              tokenizer=ctx.model.tokenizer,
              cosines=activations.decoder_cosines(ctx.space, direction, feats),
              space=ctx.space)
  n_union = len(dict.fromkeys(a for v in sets.values() for a in v))
  cap = (f' (the first {len(feats)} of {n_union})' if n_union > len(feats)
         else '')
  return {'cap': cap, 'cards': [feature_card(a, j, info)
                                for j, a in enumerate(feats)]}


# --------------------------------------------------------------------------
# Hydra and completions


def hydra_section(summary: dict, arts: dict) -> dict | None:
  """Awakened and redundant features and where they fire (None: missing)."""
  h = dict(arts['hydra'], **(summary.get('hydra') or {}))
  if not h:
    return None
  fractions = h.get('token_positions') or {}
  per_sae = arts['hydra'].get('per_sae') or []
  redundant = sorted(arts['hydra'].get('redundant') or [],
                     key=lambda r: r.get('effect', 0.0))[:MAX_CARDS]
  return {
      'facts': facts_table([('awakened', h.get('n_awakened')),
                            ('redundant', h.get('n_redundant'))],
                           'hydra-facts'),
      'note': h.get('note'),
      'positions': table(
          ('token position', 'fraction'),
          [(k, f'{float(v):.1%}') for k, v in fractions.items()],
          'hydra-positions') if fractions else None,
      'plot': (figures.position_plot(fractions)
               if fractions and sum(fractions.values()) > 0 else None),
      'per_sae': table(('hook', 'awakened', 'redundant'), [
          (p.get('hook'), p.get('n_awakened'), p.get('n_redundant'))
          for p in per_sae]) if per_sae else None,
      'woken': _woken_table(h.get('woken')),
      'redundant': table(('hook', 'latent', 'effect on metric'), [
          (r.get('hook'), r.get('latent'), r.get('effect'))
          for r in redundant]) if redundant else None}


def _woken_table(w: dict | None) -> dict | None:
  """Paper mode's `hydra.woken`: its firings' shares by token class."""
  if not w:
    return None
  shares, counts = w['shares'], w['counts']
  rows = [(k, counts.get(k), f'{float(shares[k]):.1%}')
          for k in ('system', 'template', 'instruction', 'bos')]
  rows.append(('bos, of the system firings', '',
               f"{float(shares['bos_of_system']):.1%}"))
  return table(('token class', 'firings', 'share'), rows, 'hydra-woken')


def sae_error_section(summary: dict, ctx: Context) -> dict | None:
  """The searched SAE's reconstruction error per token class (None: not
  measured)."""
  err = summary.get('sae_error_by_token_class')
  if not err:
    return None
  rows = [(name, e.get('n_tokens'), e.get('n_special'), e.get('relative_mse'))
          for name, e in err.items()]
  return {'table': table(('token class', 'tokens', 'special', 'relative MSE'),
                         rows, 'sae-error-table', digits=4),
          'hook': f'{ctx.sae.hook_name}',
          'skip_special': bool(ctx.config.get('sae_skip_special_tokens'))}


def completions_section(arts: dict) -> list[dict] | None:
  """A few harmful test prompts with every condition's reply (None:
  completions.json is missing)."""
  data = arts['completions']
  comps = data.get('completions') or {}
  prompts = data.get('prompts') or []
  if not comps:
    return None
  n = min(N_EXAMPLES, max((len(v) for v in comps.values()), default=0))
  order = [k for k in CONDITION_LABELS if k in comps] + [
      k for k in comps if k not in CONDITION_LABELS]
  out = []
  for i in range(n):
    rows = []
    for name in order:
      texts = comps[name]
      text = texts[i] if i < len(texts) else ''
      if len(text) > MAX_COMPLETION_CHARS:
        text = text[:MAX_COMPLETION_CHARS] + ' [...]'
      rows.append((CONDITION_LABELS.get(name, name), completion(text)))
    out.append({'prompt': prompts[i] if i < len(prompts) else f'prompt {i}',
                'table': table(('condition', 'completion'), rows)})
  return out


# --------------------------------------------------------------------------
# Assembly


def page(workdir: str, summary: dict, ctx: Context) -> dict:
  """Everything the report shows, as the template's one dict."""
  arts = load_artifacts(workdir)
  sets = feature_sets(summary, arts)
  feats = reported_features(sets)
  harmful, prompts = activations.prompt_activations(ctx, 'harmful_train',
                                                    feats)
  harmless, _ = activations.prompt_activations(ctx, 'harmless_train', feats)
  return {
      'title': f'Refusal dissection: {summary.get("model")}',
      'model': summary.get('model'), 'sae': summary.get('sae'),
      'sae_hook': summary.get('sae_hook'),
      'asr': asr_table(summary, arts, sets),
      'judge': judge_table(summary, arts),
      'model_judge': model_judge_table(summary, arts),
      'ce': ce_table(summary, arts),
      'chosen': chosen_sets(summary, sets),
      'stage1': stage1(arts), 'stage2': stage2(arts, sets),
      'stage3': stage3(arts, sets),
      'paper': (paper_section(summary) if summary.get('mode') == 'paper'
                else None),
      'activations': activations_section(ctx, sets, feats, harmful, prompts),
      'features': cards_section(ctx, feats, sets, arts, harmful, harmless),
      'hydra': hydra_section(summary, arts),
      'sae_error': sae_error_section(summary, ctx),
      'completions': completions_section(arts),
      'run': run_details(summary, arts),
  }


def _finalize(value) -> markupsafe.Markup:
  """Every printed value: `fmt`, then escaped as html.escape does."""
  if isinstance(value, markupsafe.Markup):  # a macro's output
    return value
  return markupsafe.Markup(html.escape(fmt(value), quote=True))


@functools.cache
def template() -> jinja2.Template:
  """The report template (package data), with autoescaping on."""
  env = jinja2.Environment(
      autoescape=True, finalize=_finalize, undefined=jinja2.StrictUndefined,
      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
  env.filters['fmt'] = fmt
  env.tests['number'] = is_number
  return env.from_string(package_files.own_file(TEMPLATE))


def render(workdir: str, summary: dict, ctx: Context) -> str:
  """The report's full HTML text."""
  return template().render(page(workdir, summary, ctx))


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


def _fit_sizes(s3: dict) -> str | None:
  """'n / n (source); train / test' of the stage-3 classifiers, or None."""
  fit = s3.get('classifier_prompts')
  if not fit:
    return None
  return (f"{fit['n_harmful']} / {fit['n_benign']} ({fit['benign_source']}); "
          f"{s3.get('n_train')} / {s3.get('n_test')}")
