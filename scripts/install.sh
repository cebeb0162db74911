#!/bin/sh
# Installs the airunner binary for this machine: downloads it and the
# release's SHA256SUMS, checks the checksum, and puts it on PATH.
#
#   sh install.sh                        # this script's version into ~/.local/bin
#   AIRUNNER_VERSION=0.1.0 sh install.sh
#   INSTALL_DIR=/usr/local/bin sh install.sh
#
# AIRUNNER_DOWNLOAD_URL is where releases live: <url>/v<version>/<file>
# (a release page's download URL, or a mirror). Nothing is installed unless
# the checksum matches. The checksum proves the download is intact, not who
# made it: SHA256SUMS comes from the same place, so use an https URL you trust.
set -eu

VERSION="${AIRUNNER_VERSION:-0.1.0}"
BASE_URL="${AIRUNNER_DOWNLOAD_URL:-https://github.com/airunner-dev/airunner/releases/download}"
INSTALL_DIR="${INSTALL_DIR:-$HOME/.local/bin}"

fail() {
  echo "install: error: $*" >&2
  exit 1
}

case "$(uname -s)" in
  Linux) os="unknown-linux-gnu" ;;
  Darwin) os="apple-darwin" ;;
  MINGW* | MSYS* | CYGWIN*) os="pc-windows-msvc" ;;
  *) fail "no airunner build for $(uname -s); build one with: deno task compile" ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch="x86_64" ;;
  aarch64 | arm64) arch="aarch64" ;;
  *) fail "no airunner build for $(uname -m); build one with: deno task compile" ;;
esac
target="${arch}-${os}"
if [ "$os" = "pc-windows-msvc" ] && [ "$arch" != "x86_64" ]; then
  fail "no airunner build for Windows on ${arch}"
fi
file="airunner-${VERSION}-${target}"
[ "$os" = "pc-windows-msvc" ] && file="${file}.exe"

if command -v curl >/dev/null 2>&1; then
  fetch() { curl --fail --silent --show-error --location --output "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget --quiet --output-document "$2" "$1"; }
else
  fail "need curl or wget to download"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else
  fail "need sha256sum or shasum to check the download"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 1' INT TERM
url="${BASE_URL}/v${VERSION}"
echo "install: downloading ${file} (${VERSION}) from ${url}" >&2
fetch "${url}/${file}" "${tmp}/${file}" || fail "could not download ${url}/${file}"
fetch "${url}/SHA256SUMS" "${tmp}/SHA256SUMS" || fail "could not download ${url}/SHA256SUMS"

expected="$(awk -v f="$file" '$2 == f { print $1 }' "${tmp}/SHA256SUMS")"
[ -n "$expected" ] || fail "SHA256SUMS has no entry for ${file}"
actual="$(sha256 "${tmp}/${file}")"
[ "$expected" = "$actual" ] || fail "checksum mismatch for ${file}: expected ${expected}, got ${actual}; nothing installed"

mkdir -p "$INSTALL_DIR"
name="airunner"
[ "$os" = "pc-windows-msvc" ] && name="airunner.exe"
# Copy next to the target, then rename: atomic, and safe over a running binary.
cp "${tmp}/${file}" "${INSTALL_DIR}/.${name}.new"
chmod 0755 "${INSTALL_DIR}/.${name}.new"
mv -f "${INSTALL_DIR}/.${name}.new" "${INSTALL_DIR}/${name}"
echo "install: installed ${INSTALL_DIR}/${name} ($("${INSTALL_DIR}/${name}" --version 2>/dev/null || echo "$VERSION"))" >&2
case ":${PATH}:" in
  *":${INSTALL_DIR}:"*) ;;
  *) echo "install: add ${INSTALL_DIR} to your PATH, e.g.: export PATH=\"${INSTALL_DIR}:\$PATH\"" >&2 ;;
esac
echo "install: try it: airunner dev   (then, in another shell: airunner submit --follow -- echo hello)" >&2
