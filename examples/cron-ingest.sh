#!/usr/bin/env bash
# Cron ingestion: chunk a folder into a dated, zstd-compressed shard, atomically, so a reader
# (or the next stage of the pipeline) never sees a half-written shard; then embed the shard and
# upsert it into an index that readers (loom retrieve) keep querying while it changes: a chunk
# whose id is there already is replaced, and a run killed midway leaves yesterday's index whole.
#
#   examples/cron-ingest.sh [DOCS_DIR] [SHARDS_DIR] [INDEX_DIR]
#   crontab:  15 2 * * *  /opt/loom/examples/cron-ingest.sh /srv/wiki /srv/shards /srv/kb
set -euo pipefail
here=${LOOM_EXAMPLES_DIR:-$(cd "$(dirname "$0")" && pwd)}
docs=${1:-$here/docs}
shards=${2:-./shards}
kb=${3:-./kb}
mkdir -p "$shards"
shard="$shards/chunks-$(date -u +%Y%m%d).jsonl.zst"

# --on-error skip: one unreadable document must not stop the nightly run; it is reported on stderr.
loom chunk "$docs" --on-error skip -o "$shard"

zstd -tq "$shard"                       # a complete zstd frame: the shard was closed properly
n=$(zstd -dc "$shard" | wc -l)
echo "$shard: $n chunks"
[ "$n" -gt 0 ]

# embed and upsert: the first run builds the index, later runs add to it (same ids replace)
if [ -d "$kb" ]; then
  zstd -dc "$shard" | loom embed -m minilm -q | loom index add -q "$kb"
else
  zstd -dc "$shard" | loom embed -m minilm -q | loom index build -q -o "$kb"
fi
loom index info --check "$kb" | jq -r '"\(.dir): \(.counts.records) chunks, generation \(.generation), parts agree: \(.check)"'
