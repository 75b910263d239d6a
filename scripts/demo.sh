#!/usr/bin/env bash
# The main job on offline data: the IWSLT14 pipeline (scripts/iwslt14.sh) run on Spanish→English
# Bible verses from Debian packages, since no IWSLT archive can be downloaded here.
#   bash scripts/demo.sh          quick setting "bible" (about 15 minutes on 2 CPU cores)
#   bash scripts/demo.sh --full   setting "bible-full": the whole corpus, real transformer_iwslt_de_en
#                                 dimensions (a GPU run; days on 2 CPU cores)
# Extra options go to scripts/iwslt14.sh (e.g. --out DIR, --debs DIR, --seqkd).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
setting=bible
if [ "${1:-}" = --full ]; then setting=bible-full; shift; fi
start=$SECONDS
bash "$root/scripts/iwslt14.sh" "$setting" "$@"
echo "demo.sh: $setting finished in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
