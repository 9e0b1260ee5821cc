#!/usr/bin/env bash
# The package as a stranger gets it. Packs effect-amp from a clean copy of the
# repository (no dist/: the pack lifecycle must build it), installs the tarball
# into a temporary consumer project outside the repository (test/consumer/,
# copied), type-checks the consumer under moduleResolution NodeNext and
# Bundler, and runs it against `effect-amp serve` started from the consumer's
# node_modules/.bin. Any failure ends the script with a line starting
# "package check FAILED".
#
# Needs the repository's node_modules (npm install) and the npm registry (for
# the consumer's install; the npm cache makes repeats quick).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/effect-amp-package.XXXXXX")
server_pid=""
started=$SECONDS

cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "package check FAILED: $*" >&2
  exit 1
}
step() { echo "== package check: $*"; }
npm_quiet() { npm --no-audit --no-fund --loglevel=error "$@"; }
repo_version() { node -p "require('$repo/node_modules/$1/package.json').version"; }

# --- pack from a clean copy ---------------------------------------------------
step "pack from a copy of the repository's files, without dist/"
mkdir "$work/clone"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$repo" && xargs -0 cp --parents -t "$work/clone" 2>/dev/null) || true
[ -f "$work/clone/package.json" ] || fail "could not copy the repository's files"
[ ! -e "$work/clone/dist" ] || fail "the copy has a dist/ already"
ln -s "$repo/node_modules" "$work/clone/node_modules"
(cd "$work/clone" && npm_quiet pack --pack-destination "$work" >"$work/pack.log" 2>&1) ||
  { cat "$work/pack.log" >&2; fail "npm pack"; }
tarball=$(ls "$work"/effect-amp-*.tgz)

# --- what the tarball holds ---------------------------------------------------
step "tarball contents ($(tar -tzf "$tarball" | wc -l) files, $(du -k "$tarball" | cut -f1) KiB)"
tar -tzf "$tarball" | sed 's|^package/||' | sort >"$work/files.txt"
for required in package.json README.md bin/effect-amp.js \
  dist/index.js dist/index.d.ts dist/index.d.ts.map dist/index.js.map \
  dist/node/index.js dist/node/index.d.ts dist/testing/index.js dist/testing/index.d.ts \
  dist/cli/main.js src/index.ts; do
  grep -qx "$required" "$work/files.txt" || fail "the tarball lacks $required"
done
if grep -E '^(test|scripts|\.ci|\.github|\.bench)/|\.(key|pem|crt)$|\.test\.|tsbuildinfo' "$work/files.txt"; then
  fail "the tarball holds files a user does not need (above)"
fi

# --- a plain install ------------------------------------------------------------
step "install the tarball into a fresh consumer project"
cp -r "$repo/test/consumer" "$work/consumer"
cd "$work/consumer"
npm_quiet install "$tarball" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "npm install of the tarball"; }
for peer in effect @effect/platform @effect/platform-node; do
  [ -f "node_modules/$peer/package.json" ] || fail "peer dependency $peer was not installed"
done
for cli in @effect/cli @effect/printer @effect/printer-ansi; do
  [ ! -e "node_modules/$cli" ] || fail "$cli was installed for a library user (it should be an optional peer)"
done
copies=$(find node_modules -path '*/effect/package.json' -not -path '*/effect/*/effect/package.json' | wc -l)
[ "$copies" -eq 1 ] || fail "$copies copies of effect installed (want one, shared with the app)"
echo "   installed: $(npm ls --all --parseable 2>/dev/null | tail -n +2 | wc -l) packages, $(du -sh node_modules | cut -f1)"

step "the command says what it needs when its packages are missing"
set +e
node_modules/.bin/effect-amp --version >"$work/bin.out" 2>"$work/bin.err"
code=$?
set -e
[ "$code" -eq 2 ] || { cat "$work/bin.out" "$work/bin.err" >&2; fail "effect-amp without @effect/cli exited $code (want 2)"; }
grep -q "npm install --save-dev @effect/cli @effect/printer @effect/printer-ansi" "$work/bin.err" ||
  { cat "$work/bin.err" >&2; fail "effect-amp without @effect/cli did not say how to install it"; }

step "add the command's packages, TypeScript and @types/node"
npm_quiet install --save-dev \
  "typescript@$(repo_version typescript)" "@types/node@^20" \
  "@effect/cli@^$(repo_version @effect/cli)" "@effect/printer@^$(repo_version @effect/printer)" \
  "@effect/printer-ansi@^$(repo_version @effect/printer-ansi)" >"$work/install2.log" 2>&1 ||
  { cat "$work/install2.log" >&2; fail "npm install of the command's packages"; }

# --- types -------------------------------------------------------------------------
step "type-check the consumer: moduleResolution Bundler (skipLibCheck off)"
npx --no-install tsc -p tsconfig.bundler.json || fail "the consumer does not type-check under Bundler"
step "type-check and build the consumer: moduleResolution NodeNext (skipLibCheck off)"
npx --no-install tsc -p tsconfig.nodenext.json || fail "the consumer does not type-check under NodeNext"

step "source and declaration maps point at files the package ships"
node --input-type=module -e '
import { readdirSync, readFileSync, existsSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
const root = "node_modules/effect-amp/dist"
let maps = 0
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) walk(p)
    else if (p.endsWith(".map")) {
      maps++
      const map = JSON.parse(readFileSync(p, "utf8"))
      for (const s of map.sources) {
        const target = resolve(dirname(p), map.sourceRoot ?? "", s)
        if (!existsSync(target)) { console.error(`${p}: source ${s} is not in the package`); process.exit(1) }
      }
    }
  }
}
walk(root)
if (maps === 0) { console.error("no maps in dist/"); process.exit(1) }
console.log(`   ${maps} maps, every source present`)
' || fail "a map points at a file the package does not ship"

# --- run ---------------------------------------------------------------------------
step "run the in-memory test kit (effect-amp/test)"
out=$(node out/kit.js) || fail "the test-kit program failed"
echo "   $out"

step "the entry points kept apart: effect-amp/schema and effect-amp/platform"
out=$(node out/entries.js) || fail "the entry-points program failed"
[ "$out" = '{"n":7,"platform":true}' ] || fail "the entry-points program printed $out"
echo "   $out"

step "start effect-amp serve from node_modules/.bin"
node_modules/.bin/effect-amp serve --port 0 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^listening on tcp:127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/serve.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.out" "$work/serve.err" >&2; fail "effect-amp serve did not start listening"; }
echo "   listening on 127.0.0.1:$port"

step "a pure client (effect-amp, effect-amp/node) calls the server"
out=$(node out/client.js "$port") || fail "the client program failed"
echo "   $out"

step "npx effect-amp call, from the consumer"
out=$(npx --no-install effect-amp call "tcp:127.0.0.1:$port" Sum a=1 b=2) || fail "npx effect-amp call failed"
[ "$out" = '{"total":"3"}' ] || fail "npx effect-amp call printed $out (want {\"total\":\"3\"})"
echo "   $out"

step "SIGTERM stops the server with exit 0"
kill -TERM "$server_pid"
set +e
wait "$server_pid"
code=$?
set -e
server_pid=""
[ "$code" -eq 0 ] || { cat "$work/serve.err" >&2; fail "effect-amp serve exited $code on SIGTERM"; }

echo "package check passed ($((SECONDS - started))s)"
