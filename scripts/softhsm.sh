#!/usr/bin/env bash
# SoftHSM2 for encstore's PKCS#11 tests and for trying HSM-wrapped keysets.
#
#   scripts/softhsm.sh install      install softhsm2 + opensc (pkcs11-tool) if missing
#   scripts/softhsm.sh module       print the SoftHSM2 module path
#   scripts/softhsm.sh setup DIR    install, then create DIR/softhsm2.conf, a token
#                                   labelled "encstore" in DIR/tokens, and DIR/pin
#                                   (0600); print the export lines to use it:
#                                     eval "$(scripts/softhsm.sh setup /tmp/hsm)"
#
# setup is idempotent: a second run reuses the token and PIN. Logs go to
# stderr; stdout carries only the export lines. The PINs are random and live
# only in DIR/pin and DIR/so-pin (both 0600), never on stdout.
# The crate's tests (cargo test -p encstore-pkcs11) need only `install`: they
# initialise their own tokens in temporary directories.
set -euo pipefail

log() { echo "softhsm.sh: $*" >&2; }

find_module() {
    local arch p
    arch=$(uname -m)
    for p in \
        "${ENCSTORE_PKCS11_MODULE:-}" \
        /usr/lib/softhsm/libsofthsm2.so \
        "/usr/lib/${arch}-linux-gnu/softhsm/libsofthsm2.so" \
        /usr/lib64/softhsm/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so \
        /opt/homebrew/lib/softhsm/libsofthsm2.so; do
        if [ -n "$p" ] && [ -f "$p" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

install() {
    if command -v softhsm2-util >/dev/null 2>&1 && command -v pkcs11-tool >/dev/null 2>&1 &&
        find_module >/dev/null; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "softhsm2-util, pkcs11-tool or libsofthsm2.so missing and no apt-get: install SoftHSM2 and OpenSC by hand"
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    log "installing softhsm2 and opensc"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet: update once if the install fails.
    if ! $sudo apt-get install -y -qq softhsm2 opensc >/dev/null 2>&1; then
        $sudo apt-get update -qq >&2
        $sudo apt-get install -y -qq softhsm2 opensc >&2
    fi
    find_module >/dev/null || { log "libsofthsm2.so not found after installing softhsm2"; return 1; }
}

random_pin() {
    # 24 hex characters from the kernel CSPRNG.
    od -An -N12 -tx1 /dev/urandom | tr -d ' \n'
}

setup() {
    local dir=$1
    install
    local module
    module=$(find_module)
    mkdir -p "$dir/tokens"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir" "$dir/tokens"
    local conf="$dir/softhsm2.conf"
    cat >"$conf" <<EOF
# Written by scripts/softhsm.sh
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
    umask 077
    [ -s "$dir/pin" ] || random_pin >"$dir/pin"
    [ -s "$dir/so-pin" ] || random_pin >"$dir/so-pin"
    chmod 600 "$dir/pin" "$dir/so-pin"
    if SOFTHSM2_CONF="$conf" softhsm2-util --show-slots 2>/dev/null | grep -Eq '^ *Label: *encstore *$'; then
        log "token \"encstore\" already initialised in $dir/tokens"
    else
        SOFTHSM2_CONF="$conf" softhsm2-util --init-token --free --label encstore \
            --so-pin "$(cat "$dir/so-pin")" --pin "$(cat "$dir/pin")" >&2
    fi
    echo "export SOFTHSM2_CONF=$conf"
    echo "export ENCSTORE_PKCS11_MODULE=$module"
    echo "export ENCSTORE_PKCS11_PIN_FILE=$dir/pin"
    log "example key URI: pkcs11:token=encstore;object=kek-1 (module and PIN from the variables above)"
}

case "${1:-}" in
install) install ;;
module) install && find_module ;;
setup)
    [ $# -eq 2 ] || { echo "usage: $0 setup DIR" >&2; exit 2; }
    setup "$2"
    ;;
*)
    echo "usage: $0 install | module | setup DIR" >&2
    exit 2
    ;;
esac
