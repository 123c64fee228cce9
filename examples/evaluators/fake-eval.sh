#!/usr/bin/env bash
# examples/evaluators/fake-eval.sh: the smallest `command` evaluator, for
# trying the protocol without a cluster: reads the request, answers with a
# metric derived from the arch text's length.
#   tailor train lfm2-350m --evaluator command --command examples/evaluators/fake-eval.sh
set -euo pipefail
req=$(cat)
echo "fake-eval: got ${#req} bytes" >&2
printf '{"metrics": {"val_bpb": %s, "request_bytes": %d}}\n' "1.5" "${#req}"
