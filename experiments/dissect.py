"""The main job: run (or resume) every stage of the refusal dissection.

python -m experiments.dissect --config=configs/dissect_organism_llama.py \
    --workdir=workdir/organism_llama
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from refusal_jax.pipeline import dissect

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/dissect_organism_llama.py', 'Pipeline config file.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.',
                               required=True)


@common.main_wrapper
def main(argv):
  del argv
  summary = dissect.run(_CONFIG.value, _WORKDIR.value,
                        mesh=common.mesh_from_flags())
  print(f"summary: {_WORKDIR.value}/summary.json")
  print(f"report:  {_WORKDIR.value}/report.html")
  print(f"direction ablation ASR {summary['direction']['asr_ablation']:.2f}, "
        f"stage-2 set of {len(summary['stage2']['features'])} features ASR "
        f"{summary['stage2']['asr']:.2f}, FM ASR "
        f"{summary['stage3']['fm_asr']:.2f} vs linear probe "
        f"{summary['stage3']['linear_probe_asr']:.2f}")


if __name__ == '__main__':
  app.run(main)
