#!/usr/bin/env bash
# Fails when a C++ file of the tree differs from .clang-format (names each file and place).
# `make format` mends them.
set -euo pipefail
cd "$(dirname "$0")/.."
cf=$(command -v clang-format || command -v clang-format-14 || true)
if [ -z "$cf" ]; then
  echo "check-format: clang-format is not installed (Debian package clang-format)" >&2
  exit 1
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h')
else
  mapfile -t files < <(find . -path ./build -prune -o -path './build-*' -prune -o \
                         \( -name '*.cpp' -o -name '*.h' \) -print | sort)
fi
if ! "$cf" --dry-run --Werror "${files[@]}" 2>/tmp/check-format.$$; then
  grep 'error:' /tmp/check-format.$$ | head -40 >&2
  n=$(grep -c 'error:' /tmp/check-format.$$ || true)
  rm -f /tmp/check-format.$$
  echo "check-format: $n place(s) differ from .clang-format; run 'make format'" >&2
  exit 1
fi
rm -f /tmp/check-format.$$
echo "check-format: ${#files[@]} files match .clang-format"
