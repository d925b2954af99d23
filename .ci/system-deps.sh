#!/usr/bin/env bash
# Installs the Debian packages the build and the suite need. Idempotent: does nothing when all are present.
#  - libsecret-1-dev, pkg-config: keytar builds from source against libsecret (no prebuilt binary is reachable)
#  - gnome-keyring, dbus-x11, libsecret-tools: a real Secret Service for the keychain tests
#  - chromium: headless browser for renderer tests (browser mode)
set -euo pipefail
pkgs=(libsecret-1-dev pkg-config gnome-keyring dbus-x11 libsecret-tools chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system-deps: all present (${pkgs[*]})"
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system-deps: done"
