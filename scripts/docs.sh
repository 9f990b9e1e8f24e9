#!/bin/bash
# Build the documentation site (docs/, an mdBook) into build/docs: static files, open
# build/docs/index.html in a browser or serve the directory with any web server.
# Run as root (it installs mdbook and the Debian packages the build needs, as the suite does).
set -euo pipefail
cd "$(dirname "$0")/.."
export KEEL_DEPS_DOCS=1
source scripts/install-deps.sh
mdbook build docs
echo "docs: the site is in build/docs (open build/docs/index.html)"
