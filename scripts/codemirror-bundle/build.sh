#!/usr/bin/env bash
# Rebuilds static/vendor/codemirror/codemirror-yaml.min.js from entry.mjs and the exact versions
# in package-lock.json. Needs node and npm; works in a scratch copy so no node_modules lands in
# the repository. The portal itself never needs npm: the built file is committed.
#   scripts/codemirror-bundle/build.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vendor="$here/../../static/vendor/codemirror"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cp "$here/package.json" "$here/package-lock.json" "$here/entry.mjs" "$scratch/"
cd "$scratch"
npm ci --no-audit --no-fund --loglevel=error
# esbuild writes no source map and no sourceMappingURL comment, so collectstatic's manifest
# storage has nothing to follow.
./node_modules/.bin/esbuild entry.mjs --bundle --minify --format=iife \
  --global-name=CodeMirror --target=es2020 --legal-comments=none \
  --outfile="$vendor/codemirror-yaml.min.js"
ls -l "$vendor/codemirror-yaml.min.js"
