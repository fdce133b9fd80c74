#!/usr/bin/env bash
# Reverse interop: keysets and ciphertexts written by the `encstore` CLI must
# be read and decrypted by Google's Tink (Python, tink==1.16.1).
#
# Usage (from anywhere, after `cargo build -p encstore-cli`):
#
#     python3 -m pip install tink==1.16.1 cryptography
#     tests/interop/reverse.sh [PATH-TO-encstore]
#
# PATH-TO-encstore defaults to $ENCSTORE_BIN, then target/debug/encstore.
# Set KEEP=1 to keep the work directory (its path is printed).
#
# It creates, in a temp dir, with the encstore binary only:
#   - a cleartext master keyset (JSON) and one (binary);
#   - one keyset per template (`encstore list-key-templates`), cleartext JSON
#     and binary (Python Tink 1.16 has no ChaCha20Poly1305Key manager: those
#     keysets are parsed by Tink and decrypted with `cryptography`, see
#     check_from_encstore.py; streaming AEAD keysets are loaded as Tink
#     StreamingAead, without ciphertexts: the CLI writes none);
#   - a rotated streaming keyset, cleartext and encrypted;
#   - rotated keysets (add-key + promote-key, rotate-keyset, disable-key,
#     destroy-key, delete-key), with data written by each generation;
#   - encrypted keysets (EncryptedKeyset, JSON and binary), with and without
#     keyset associated data, made by create-keyset and by convert-keyset,
#     and re-encrypted under another master keyset;
#   - ciphertexts of several plaintexts and associated data values;
# then runs check_from_encstore.py on them.
#
# A binary built with `--features fips` (the `fips` crypto provider, AWS-LC's
# FIPS 140-3 module, `encstore providers` says `fips_mode: yes`) refuses key
# types that are not FIPS-approved: then every such template must be refused
# with a message naming the key type, and the mixed-type steps use approved
# types in their place (see `tpl`), so that Python Tink checks what the FIPS
# build writes. Exit status: 0 if Python Tink
# read every keyset (and every encrypted keyset's keysetInfo) and decrypted
# every ciphertext, non-zero otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-${ENCSTORE_BIN:-$ROOT/target/debug/encstore}}
PYTHON=${PYTHON:-python3}
if [[ ! -x $BIN ]]; then
    echo "reverse.sh: no encstore binary at $BIN (run: cargo build -p encstore-cli)" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import tink, cryptography' 2>/dev/null; then
    echo "reverse.sh: Python Tink or cryptography is missing (run: $PYTHON -m pip install tink==1.16.1 cryptography)" >&2
    exit 2
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/encstore-reverse.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then
    echo "reverse.sh: work directory $W"
else
    trap 'rm -rf "$W"' EXIT
fi
cd "$W"
mkdir -p ks ct

es() { "$BIN" "$@" 2>>"$W/encstore.log"; }

# The FIPS build? (`encstore providers` fails if no provider is usable.)
FIPS=0
if "$BIN" providers | grep -qx 'provider: fips'; then
    "$BIN" providers | grep -qx 'fips_mode: yes' || {
        echo "reverse.sh: the fips provider is not in FIPS mode" >&2
        exit 1
    }
    FIPS=1
    echo "reverse.sh: fips provider: non-approved key types must be refused; approved ones stand in for them"
fi
FIPS_REFUSED=0

# tpl TEMPLATE: the template to use; under fips, an approved one of the
# same prefix kind in place of a non-approved one.
tpl() {
    if [[ $FIPS == 0 ]]; then
        echo "$1"
        return
    fi
    case $1 in
    CHACHA20_POLY1305) echo AES128_GCM ;;
    XCHACHA20_POLY1305) echo AES128_CTR_HMAC_SHA256 ;;
    AES256_GCM_SIV_RAW) echo AES256_GCM_RAW ;;
    XAES_256_GCM_192_BIT_NONCE) echo AES256_GCM ;;
    AES256_EAX) echo AES256_CTR_HMAC_SHA256 ;;
    *) echo "$1" ;;
    esac
}

# Manifest fragments (assembled at the end).
KEYSETS=()
CASES=()

# add_keyset NAME FILE FORMAT MASTER|"" AD_HEX|"" PRIMARY NUM_KEYS
add_keyset() {
    local master=null ad=null
    [[ -n $4 ]] && master="\"$4\""
    [[ -n $5 || -n $4 ]] && ad="\"$5\""
    KEYSETS+=("\"$1\": {\"file\": \"$2\", \"format\": \"$3\", \"master_keyset\": $master, \"keyset_associated_data_hex\": $ad, \"expect\": {\"primary_key_id\": $6, \"num_keys\": $7}}")
}

hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# Plaintexts.
printf '' >pt_empty
printf 'hello from encstore' >pt_short
head -c 1024 /dev/urandom >pt_1k
printf '\000\377\001\376\000\000\200' >pt_bin
PLAINTEXTS=(pt_empty pt_short pt_1k pt_bin)
AD_ASCII="certificates/example.com/example.com.key"
AD_BIN_HEX="00010203feff00"
KAD0="fleet-s/keyset"
N=0

# encrypt_cases KEYSETNAME encstore-keyset-flags...   (encrypts every plaintext,
# with no AD, ASCII AD and binary AD; records the cases against KEYSETNAME)
encrypt_cases() {
    local name=$1
    shift
    local pt
    for pt in "${PLAINTEXTS[@]}"; do
        N=$((N + 1))
        es encrypt "$@" --in "$pt" --out "ct/$N.ct"
        CASES+=("{\"keyset\": \"$name\", \"ciphertext_file\": \"ct/$N.ct\", \"plaintext_file\": \"$pt\", \"associated_data_hex\": \"\"}")
        N=$((N + 1))
        es encrypt "$@" --associated-data "$AD_ASCII" --in "$pt" --out "ct/$N.ct"
        CASES+=("{\"keyset\": \"$name\", \"ciphertext_file\": \"ct/$N.ct\", \"plaintext_file\": \"$pt\", \"associated_data_hex\": \"$(hex "$AD_ASCII")\"}")
        N=$((N + 1))
        es encrypt "$@" --associated-data-hex "$AD_BIN_HEX" <"$pt" >"ct/$N.ct"
        CASES+=("{\"keyset\": \"$name\", \"ciphertext_file\": \"ct/$N.ct\", \"plaintext_file\": \"$pt\", \"associated_data_hex\": \"$AD_BIN_HEX\"}")
    done
}

# add_case KEYSETNAME CTFILE PTFILE ADHEX
add_case() {
    CASES+=("{\"keyset\": \"$1\", \"ciphertext_file\": \"$2\", \"plaintext_file\": \"$3\", \"associated_data_hex\": \"$4\"}")
}

primary_of() { # encstore-keyset-flags... -> primary key ID
    es list-keyset --json "$@" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["primaryKeyId"])'
}
key_ids_of() { # -> all key IDs, one per line
    es list-keyset --json "$@" | "$PYTHON" -c 'import json,sys; [print(k["keyId"]) for k in json.load(sys.stdin)["keyInfo"]]'
}

# Master keysets (cleartext), JSON and binary.
es create-keyset --key-template AES256_GCM --out master.json
es create-keyset --key-template AES128_GCM --out-format binary --out master2.bin
MASTERS='"m1": {"file": "master.json", "format": "json"}, "m2": {"file": "master2.bin", "format": "binary"}'

# 1. One keyset per template, cleartext JSON and binary.
TEMPLATES=$(es list-key-templates)
LISTED=""
if [[ $FIPS == 1 ]]; then
    # The fips build lists only the templates it can make keys from. Every
    # template (as the ring provider compiled beside it lists them) is
    # tried: exactly the unlisted ones must be refused.
    LISTED=" $(echo $TEMPLATES) "
    TEMPLATES=$(ENCSTORE_CRYPTO_PROVIDER=ring es list-key-templates)
fi
for t in $TEMPLATES; do
    if [[ $FIPS == 1 ]] && ! "$BIN" create-keyset --key-template "$t" --out "ks/$t.json" 2>"$W/refused.err"; then
        # Refused: it must say why, naming a key type, and write nothing.
        grep -qE 'encstore: error: .*[A-Za-z0-9]+Key is not FIPS-approved in this build' "$W/refused.err" || {
            echo "reverse.sh: $t failed under fips without a FIPS refusal:" >&2
            cat "$W/refused.err" >&2
            exit 1
        }
        [[ ! -e ks/$t.json ]] || { echo "reverse.sh: $t: refused but written" >&2; exit 1; }
        [[ $LISTED != *" $t "* ]] || { echo "reverse.sh: $t: listed under fips but refused" >&2; exit 1; }
        FIPS_REFUSED=$((FIPS_REFUSED + 1))
        continue
    fi
    if [[ $FIPS == 1 && $LISTED != *" $t "* ]]; then
        echo "reverse.sh: $t: made under fips but not listed by list-key-templates" >&2
        exit 1
    fi
    [[ -e ks/$t.json ]] || es create-keyset --key-template "$t" --out "ks/$t.json"
    es convert-keyset --in "ks/$t.json" --out-format binary --out "ks/$t.bin"
    p=$(primary_of --in "ks/$t.json")
    add_keyset "$t.json" "ks/$t.json" json "" "" "$p" 1
    add_keyset "$t.bin" "ks/$t.bin" binary "" "" "$p" 1
    if [[ $t == *_HKDF_* || $t == *_SHA256_4KB || $t == *_SHA256_1MB ]]; then
        continue # streaming AEAD: no CLI ciphertexts
    fi
    encrypt_cases "$t.json" --keyset "ks/$t.json"
    N=$((N + 1))
    es encrypt --keyset "ks/$t.bin" --keyset-format binary --associated-data "$AD_ASCII" --in pt_short --out "ct/$N.ct"
    add_case "$t.bin" "ct/$N.ct" pt_short "$(hex "$AD_ASCII")"
done

# 2. Rotation the safe way (add-key, promote-key), with mixed types, and
#    data written by every generation; then an old key disabled, one
#    destroyed, one deleted, and rotate-keyset.
R=ks/rotated.json
es create-keyset --key-template AES128_GCM --out $R
GEN_CTS=()
gen=0
for t in AES256_GCM XCHACHA20_POLY1305 AES256_GCM_SIV_RAW AES128_CTR_HMAC_SHA256 XAES_256_GCM_192_BIT_NONCE AES256_EAX; do
    t=$(tpl "$t")
    N=$((N + 1))
    printf 'generation %d' $gen >"pt_gen$gen"
    es encrypt --keyset $R --associated-data "$AD_ASCII" --in "pt_gen$gen" --out "ct/$N.ct"
    GEN_CTS+=("ct/$N.ct:pt_gen$gen")
    gen=$((gen + 1))
    es add-key --key-template "$t" --in $R --out $R
    new=$(key_ids_of --in $R | tail -n 1)
    es promote-key --key-id "$new" --in $R --out $R
done
N=$((N + 1))
printf 'generation %d' $gen >"pt_gen$gen"
es encrypt --keyset $R --associated-data "$AD_ASCII" --in "pt_gen$gen" --out "ct/$N.ct"
GEN_CTS+=("ct/$N.ct:pt_gen$gen")
p=$(primary_of --in $R)
add_keyset rotated "$R" json "" "" "$p" 7
for c in "${GEN_CTS[@]}"; do add_case rotated "${c%%:*}" "${c##*:}" "$(hex "$AD_ASCII")"; done

# rotate-keyset (add + promote at once), then retire old keys.
R2=ks/rotated2.json
cp $R $R2
es rotate-keyset --key-template AES128_GCM_RAW --in $R2 --out $R2
mapfile -t IDS < <(key_ids_of --in $R2)
es disable-key --key-id "${IDS[1]}" --in $R2 --out $R2
es destroy-key --key-id "${IDS[2]}" --in $R2 --out $R2
es delete-key --key-id "${IDS[3]}" --in $R2 --out $R2
es enable-key --key-id "${IDS[1]}" --in $R2 --out $R2
es disable-key --key-id "${IDS[4]}" --in $R2 --out $R2
p=$(primary_of --in $R2)
add_keyset rotated2 "$R2" json "" "" "$p" 7
# Generation 0 (key IDS[0]) and 1 (IDS[1], re-enabled) still decrypt; so does
# data written now (RAW primary).
add_case rotated2 "${GEN_CTS[0]%%:*}" "${GEN_CTS[0]##*:}" "$(hex "$AD_ASCII")"
add_case rotated2 "${GEN_CTS[1]%%:*}" "${GEN_CTS[1]##*:}" "$(hex "$AD_ASCII")"
add_case rotated2 "${GEN_CTS[5]%%:*}" "${GEN_CTS[5]##*:}" "$(hex "$AD_ASCII")"
encrypt_cases rotated2 --keyset $R2

# Streaming: rotated through every streaming template, then encrypted.
S=ks/streaming.json
es create-keyset --key-template AES128_GCM_HKDF_4KB --out $S
for t in AES256_GCM_HKDF_1MB AES128_CTR_HMAC_SHA256_4KB AES256_CTR_HMAC_SHA256_1MB; do
    es add-key --key-template "$t" --in $S --out $S
done
es promote-key --key-id "$(key_ids_of --in $S | tail -n 1)" --in $S --out $S
p=$(primary_of --in $S)
add_keyset streaming.json "$S" json "" "" "$p" 4
es convert-keyset --in $S --new-master-keyset master.json --new-keyset-associated-data "$KAD0" \
    --out-format binary --out ks/streaming-enc.bin
add_keyset streaming-enc.bin ks/streaming-enc.bin binary m1 "$(hex "$KAD0")" "$p" 4

# 3. Encrypted keysets: create-keyset with a master keyset, JSON and binary,
#    with and without keyset associated data.
KAD="fleet-a/keyset"
es create-keyset --key-template AES256_GCM --master-keyset master.json --out ks/enc.json
es create-keyset --key-template "$(tpl CHACHA20_POLY1305)" --master-keyset master.json --out ks/enc-cc.json
p=$(primary_of --master-keyset master.json --in ks/enc-cc.json)
add_keyset enc-cc.json ks/enc-cc.json json m1 "" "$p" 1
encrypt_cases enc-cc.json --keyset ks/enc-cc.json --master-keyset master.json
es create-keyset --key-template "$(tpl XCHACHA20_POLY1305)" --master-keyset master.json \
    --keyset-associated-data "$KAD" --out-format binary --out ks/enc-ad.bin
es add-key --key-template AES128_GCM_RAW --master-keyset master.json \
    --keyset-associated-data "$KAD" --in ks/enc-ad.bin --in-format binary --out ks/enc-ad.bin --out-format binary
es rotate-keyset --key-template AES256_GCM --master-keyset master.json --in ks/enc.json --out ks/enc.json
p=$(primary_of --master-keyset master.json --in ks/enc.json)
add_keyset enc.json ks/enc.json json m1 "" "$p" 2
encrypt_cases enc.json --keyset ks/enc.json --master-keyset master.json
p=$(primary_of --master-keyset master.json --keyset-associated-data "$KAD" --in ks/enc-ad.bin --in-format binary)
add_keyset enc-ad.bin ks/enc-ad.bin binary m1 "$(hex "$KAD")" "$p" 2
encrypt_cases enc-ad.bin --keyset ks/enc-ad.bin --keyset-format binary --master-keyset master.json \
    --keyset-associated-data-hex "$(hex "$KAD")"

# convert-keyset: cleartext rotated keyset -> encrypted (JSON, binary, AD),
# and re-encrypted under another (binary) master keyset.
es convert-keyset --in $R --new-master-keyset master.json --out ks/rot-enc.json
es convert-keyset --in $R --new-master-keyset master.json --new-keyset-associated-data "$KAD" \
    --out-format binary --out ks/rot-enc-ad.bin
es convert-keyset --in ks/rot-enc-ad.bin --in-format binary --master-keyset master.json \
    --keyset-associated-data "$KAD" --new-master-keyset master2.bin \
    --new-keyset-associated-data-hex "$AD_BIN_HEX" --out ks/rot-enc-m2.json
p=$(primary_of --in $R)
add_keyset rot-enc.json ks/rot-enc.json json m1 "" "$p" 7
add_keyset rot-enc-ad.bin ks/rot-enc-ad.bin binary m1 "$(hex "$KAD")" "$p" 7
add_keyset rot-enc-m2.json ks/rot-enc-m2.json json m2 "$AD_BIN_HEX" "$p" 7
for k in rot-enc.json rot-enc-ad.bin rot-enc-m2.json; do
    for c in "${GEN_CTS[@]}"; do add_case "$k" "${c%%:*}" "${c##*:}" "$(hex "$AD_ASCII")"; done
done

# Manifest.
{
    echo "{\"masters\": {$MASTERS},"
    echo ' "keysets": {'
    for i in "${!KEYSETS[@]}"; do
        sep=,
        [[ $i -eq $((${#KEYSETS[@]} - 1)) ]] && sep=
        echo "  ${KEYSETS[$i]}$sep"
    done
    echo ' },'
    echo ' "cases": ['
    for i in "${!CASES[@]}"; do
        sep=,
        [[ $i -eq $((${#CASES[@]} - 1)) ]] && sep=
        echo "  ${CASES[$i]}$sep"
    done
    echo ' ]}'
} >manifest.json

if [[ $FIPS == 1 ]]; then
    # AES-GCM-SIV, AES-EAX, ChaCha20 and XChaCha20, X-AES-GCM: 4 templates each.
    if [[ $FIPS_REFUSED != 16 ]]; then
        echo "reverse.sh: fips refused $FIPS_REFUSED templates, expected 16" >&2
        exit 1
    fi
    echo "reverse.sh: fips refused the $FIPS_REFUSED non-approved templates, naming their key types"
fi
echo "reverse.sh: encstore wrote ${#KEYSETS[@]} keysets and $N ciphertexts; checking them with Python Tink"
"$PYTHON" "$HERE/check_from_encstore.py" "$W"

# HSM-wrapped keysets (SoftHSM2): Tink cannot unwrap them without the HSM
# key, but it must read their keysetInfo.
if command -v softhsm2-util >/dev/null 2>&1; then
    HSM="$W/hsm"
    eval "$(bash "$ROOT/scripts/softhsm.sh" setup "$HSM")"
    URI="pkcs11:token=encstore;object=reverse-kek"
    es create-master-key --master-key-uri "$URI" >/dev/null
    es create-keyset --key-template AES256_GCM --master-key-uri "$URI" --out ks/hsm.json
    es rotate-keyset --key-template "$(tpl XCHACHA20_POLY1305)" --master-key-uri "$URI" \
        --in ks/hsm.json --out ks/hsm.json
    es convert-keyset --master-key-uri "$URI" --in ks/hsm.json --new-master-key-uri "$URI" \
        --new-keyset-associated-data "$KAD" --out-format binary --out ks/hsm.bin
    es list-keyset --master-key-uri "$URI" --in ks/hsm.json --json >hsm-info.json
    "$PYTHON" "$HERE/check_hsm_keyset_info.py" ks/hsm.json json hsm-info.json
    es list-keyset --master-key-uri "$URI" --keyset-associated-data "$KAD" --in ks/hsm.bin \
        --in-format binary --json >hsm-info-bin.json
    "$PYTHON" "$HERE/check_hsm_keyset_info.py" ks/hsm.bin binary hsm-info-bin.json
else
    echo "reverse.sh: SKIPPED the HSM-wrapped keyset check: SoftHSM2 is not installed (scripts/softhsm.sh install)" >&2
    if [[ ${ENCSTORE_REQUIRE_SERVICES:-} == 1 ]]; then exit 1; fi
fi
