#!/usr/bin/env bash
# Re-vendors the dashboard's front-end libraries from npm (versions pinned in
# web/package.json and web/package-lock.json) into static/vendor/, with their
# licences. The copied files are committed, so building chathub needs no npm.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd web && npm ci --no-audit --no-fund)
m=web/node_modules
v=static/vendor
rm -rf "$v" && mkdir -p "$v"/{bootstrap,chartjs,fontawesome/css,fontawesome/webfonts}
cp "$m/bootstrap/dist/css/bootstrap.min.css" "$m/bootstrap/dist/js/bootstrap.bundle.min.js" "$m/bootstrap/LICENSE" "$v/bootstrap/"
cp "$m/chart.js/dist/chart.umd.min.js" "$m/chart.js/LICENSE.md" "$v/chartjs/"
cp "$m/@fortawesome/fontawesome-free/css/all.min.css" "$v/fontawesome/css/"
cp "$m/@fortawesome/fontawesome-free/webfonts/"*.woff2 "$v/fontawesome/webfonts/"
cp "$m/@fortawesome/fontawesome-free/LICENSE.txt" "$v/fontawesome/"
# Source-map comments point at files we do not ship.
sed -i 's|/\*# sourceMappingURL=.*\*/||; s|//# sourceMappingURL=.*||' "$v"/bootstrap/*.min.* "$v"/chartjs/chart.umd.min.js
echo "vendored into $v:"; du -sh "$v"
