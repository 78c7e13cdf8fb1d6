#!/usr/bin/env bash
# Documents as records: any JSONL with "id" and "text" (a database export, a crawl) chunks the
# same way; every other field (here "meta") rides along into each chunk.
set -euo pipefail
printf '%s\n' \
  '{"id":"kb-1","text":"Restart the agent.\n\nThen check the status page. If it is still red, page the on-call engineer.","meta":{"team":"ops"}}' \
  '{"id":"kb-2","text":"Rotate the keys every ninety days.","meta":{"team":"security"}}' |
  loom chunk --size 40 --overlap 0 |
  jq -c '{id, text, meta}'
