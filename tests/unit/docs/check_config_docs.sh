#!/usr/bin/env bash
# Checks that every row `<service> --help-config` prints stands, the same, in the README's tables.
# Usage: check_config_docs.sh README BUILD_DIR
set -euo pipefail
readme=$1
build=$2
missing=0
rows=0
for svc in order-intake reconciliation ledger statement-import topupctl; do
    exe="$build/services/$svc/$svc"
    [ -x "$exe" ] || { echo "docs_config: $exe is not built" >&2; exit 1; }
    while IFS= read -r row; do
        case "$row" in '| `'*) ;; *) continue ;; esac
        # The page folder's default is the checkout's path, written generically in the README.
        row=$(printf '%s' "$row" | sed -E "s#\`/[^\`]*/services/order-intake/web\`#the checkout's \`services/order-intake/web\`#")
        rows=$((rows + 1))
        if ! grep -qxF -- "$row" "$readme"; then
            echo "docs_config: README.md lacks (or differs from) this row of '$svc --help-config':" >&2
            echo "  $row" >&2
            missing=$((missing + 1))
        fi
    done < <("$exe" --help-config)
done
echo "docs_config: $rows rows checked, $missing missing or different"
[ "$missing" -eq 0 ] && [ "$rows" -gt 40 ]
