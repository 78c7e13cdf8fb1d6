#!/usr/bin/env bash
# Cron ingestion: chunk a folder into a dated, zstd-compressed shard, atomically, so a reader
# (or the next stage of the pipeline) never sees a half-written shard.
#
#   examples/cron-ingest.sh [DOCS_DIR] [SHARDS_DIR]
#   crontab:  15 2 * * *  /opt/loom/examples/cron-ingest.sh /srv/wiki /srv/shards
set -euo pipefail
here=${LOOM_EXAMPLES_DIR:-$(cd "$(dirname "$0")" && pwd)}
docs=${1:-$here/docs}
shards=${2:-./shards}
mkdir -p "$shards"
shard="$shards/chunks-$(date -u +%Y%m%d).jsonl.zst"

# --on-error skip: one unreadable document must not stop the nightly run; it is reported on stderr.
loom chunk "$docs" --on-error skip -o "$shard"

zstd -tq "$shard"                       # a complete zstd frame: the shard was closed properly
n=$(zstd -dc "$shard" | wc -l)
echo "$shard: $n chunks"
[ "$n" -gt 0 ]
