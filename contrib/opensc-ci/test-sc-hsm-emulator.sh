#!/bin/bash
#
# p11test against sc-hsm-emulator, an emulated CardContact SmartCard-HSM served to pcscd
# through vsmartcard's vpcd reader: the shape of OpenSC's .github/test-*.sh scripts.
#
# Run it from the root of a built OpenSC source tree (./configure && make). It uses that
# tree's own build, not an installed OpenSC:
#   pkcs11-tool  src/tools/.libs/pkcs11-tool (src/tools/pkcs11-tool if there is no .libs)
#   the module   src/pkcs11/.libs/opensc-pkcs11.so
#   libopensc    src/libopensc/.libs (first on LD_LIBRARY_PATH)
#   p11test      src/tests/p11test/p11test, run in its directory
# The card runs in a private pcscd (`sc-hsm-emulator sandbox`: its own mount and network
# namespaces), so no system pcscd is needed or touched, and every process of a run ends with it.
#
# Usage: test-sc-hsm-emulator.sh [valgrind]
#
# Settings (environment):
#   SC_HSM_EMULATOR_SOURCE  a checkout of sc-hsm-emulator to build; without it the script
#                           clones SC_HSM_EMULATOR_REPO at SC_HSM_EMULATOR_REF into
#                           ./sc-hsm-emulator (kept, as the other scripts keep their clones)
#   SC_HSM_EMULATOR_REPO    git URL of sc-hsm-emulator
#   SC_HSM_EMULATOR_REF     tag to build (default below)
#   SC_HSM_EMULATOR_ROOT    where `cargo install` puts bin/sc-hsm-emulator
#                           (default: SOURCE/target/opensc-ci)
#   SC_HSM_EMULATOR_SEED    the card's seed: the same keys on every run (default 1)
#   CARGO_TARGET_DIR        honoured by cargo install (default: SOURCE's target/)
#   VALGRIND                with `valgrind`, the valgrind command to use (default below)
#   SC_HSM_EMULATOR_SUPPRESSIONS  with `valgrind`, further suppression files (space-separated)
#                           beside the tree's tests/opensc.supp, such as this folder's
#                           opensc-0.26-valgrind.supp for an OpenSC older than 0.27
#
# Needs: cargo (Rust 1.90 or later), pcscd, vsmartcard's vpcd driver, util-linux, iproute2,
# valgrind for the valgrind run. Missing Debian/Ubuntu packages are installed with apt-get
# (as root or through sudo). The sandbox needs root or user namespaces: as a normal user
# where user namespaces are not allowed, the card runs through sudo.

set -eu -o pipefail
set -x

SC_HSM_EMULATOR_REPO=${SC_HSM_EMULATOR_REPO:-}
SC_HSM_EMULATOR_REF=${SC_HSM_EMULATOR_REF:-v0.1.0}
SC_HSM_EMULATOR_SEED=${SC_HSM_EMULATOR_SEED:-1}
PIN=648219

TREE=$PWD
P11TEST_DIR=$TREE/src/tests/p11test
if [ ! -x "$P11TEST_DIR/p11test" ] || [ ! -f "$TREE/src/pkcs11/.libs/opensc-pkcs11.so" ]; then
	echo "run this from the root of a built OpenSC tree (no p11test or opensc-pkcs11.so here)" >&2
	exit 1
fi

with_valgrind=0
if [ "${1:-}" = "valgrind" ] || [ "${2:-}" = "valgrind" ]; then
	with_valgrind=1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

# Installs Debian/Ubuntu packages (the callers look first for what they provide).
install_packages() {
	if ! command -v apt-get >/dev/null; then
		echo "missing: $*; install them (no apt-get here)" >&2
		return 1
	fi
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# pcscd and vpcd. The emulator's sandbox loads vpcd from where Debian's and Ubuntu's
# vsmartcard-vpcd put it (vsmartcard built from source with default settings installs there
# too: OpenSC's .github/setup-vsmartcard.sh is the fallback where the package is missing).
VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
[ -x /usr/sbin/pcscd ] || command -v pcscd >/dev/null || install_packages pcscd
if [ ! -f "$VPCD_DRIVER" ]; then
	install_packages vsmartcard-vpcd || true
	if [ ! -f "$VPCD_DRIVER" ] && [ -x .github/setup-vsmartcard.sh ]; then
		./.github/setup-vsmartcard.sh
	fi
	if [ ! -f "$VPCD_DRIVER" ]; then
		echo "no vpcd driver at $VPCD_DRIVER" >&2
		exit 1
	fi
fi
for tool in unshare setpriv nsenter; do
	command -v "$tool" >/dev/null || { install_packages util-linux; break; }
done
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || install_packages iproute2
if [ "$with_valgrind" = 1 ] && [ -z "${VALGRIND:-}" ]; then
	command -v valgrind >/dev/null || install_packages valgrind
fi

# The emulator: a checkout given, or the pinned tag cloned here.
if [ -n "${SC_HSM_EMULATOR_SOURCE:-}" ]; then
	SOURCE=$SC_HSM_EMULATOR_SOURCE
else
	SOURCE=$TREE/sc-hsm-emulator
	if [ ! -d "$SOURCE" ]; then
		if [ -z "$SC_HSM_EMULATOR_REPO" ]; then
			echo "set SC_HSM_EMULATOR_REPO (git URL) or SC_HSM_EMULATOR_SOURCE (a checkout)" >&2
			exit 1
		fi
		git clone --depth 1 --branch "$SC_HSM_EMULATOR_REF" "$SC_HSM_EMULATOR_REPO" "$SOURCE"
	fi
fi
ROOT=${SC_HSM_EMULATOR_ROOT:-$SOURCE/target/opensc-ci}
cargo install --locked --path "$SOURCE/vpcd-bridge" --root "$ROOT"
EMULATOR=$ROOT/bin/sc-hsm-emulator
"$EMULATOR" --version

# The reference log: OpenSC's copy beside its other references, else the emulator's own
# (recorded with OpenSC 0.26.1).
REFERENCE=$P11TEST_DIR/sc-hsm-emulator_ref.json
if [ ! -f "$REFERENCE" ]; then
	REFERENCE=$SOURCE/contrib/opensc-ci/sc-hsm-emulator_ref.json
	echo "no src/tests/p11test/sc-hsm-emulator_ref.json: comparing with $REFERENCE"
fi

# What the commands on the card run with: the tree's libopensc first; under valgrind, the
# flags of OpenSC's other test scripts (.github/setup-valgrind.sh) and libpcsclite preloaded
# (pcsc-lite is otherwise loaded and unloaded at run time, which spoils valgrind's traces).
MODULE=$TREE/src/pkcs11/.libs/opensc-pkcs11.so
PKCS11_TOOL=$TREE/src/tools/.libs/pkcs11-tool
[ -x "$PKCS11_TOOL" ] || PKCS11_TOOL=$TREE/src/tools/pkcs11-tool
LIBRARY_PATH=$TREE/src/libopensc/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
valgrind_command=()
preload=
if [ "$with_valgrind" = 1 ]; then
	if [ -n "${VALGRIND:-}" ]; then
		read -r -a valgrind_command <<<"$VALGRIND"
	else
		valgrind_command=(valgrind -q --error-exitcode=1 --leak-check=full --keep-debuginfo=yes
			--trace-children=yes --gen-suppressions=all)
		if [ -f "$TREE/tests/opensc.supp" ]; then
			valgrind_command+=("--suppressions=$TREE/tests/opensc.supp")
		fi
		for supp in ${SC_HSM_EMULATOR_SUPPRESSIONS:-}; do
			valgrind_command+=("--suppressions=$supp")
		done
	fi
	preload=$("$(command -v ldconfig || echo /sbin/ldconfig)" -p | grep -m1 'libpcsclite\.so\.1 ' |
		sed 's/.*=> //' || true)
fi

# The card's database and its private pcscd's files live in a directory of this run.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sc-hsm-emulator-ci.XXXXXX")
cleanup() {
	rm -rf "$WORK"
}
trap cleanup EXIT
export TMPDIR=$WORK
CARD=$WORK/card.redb

# The sandbox runs as this user where user namespaces allow it, else through sudo.
SANDBOX_SUDO=
if [ -n "$SUDO" ] && ! "$EMULATOR" sandbox -- true >/dev/null 2>&1; then
	SANDBOX_SUDO=sudo
fi

# Runs a command against the card: each command gets a private pcscd of its own with the
# card inserted, and ends with it. LD_* variables are set inside (sudo would drop them).
on_card() {
	$SANDBOX_SUDO "$EMULATOR" sandbox --db "$CARD" --seed "$SC_HSM_EMULATOR_SEED" -- \
		env "LD_LIBRARY_PATH=$LIBRARY_PATH" ${preload:+"LD_PRELOAD=$preload"} \
		"${valgrind_command[@]}" "$@"
}

# A card initialised with the PINs of OpenSC's wiki, and the four keys of sc-hsm_ref.json
# (the log of a physical SmartCard-HSM), generated on the card.
"$EMULATOR" init --db "$CARD" --seed "$SC_HSM_EMULATOR_SEED" --pin "$PIN" --so-pin 3537363231383830
keygen() {
	on_card "$PKCS11_TOOL" --module "$MODULE" -l --pin "$PIN" --keypairgen "$@"
}
keygen --key-type rsa:2048 --id 10 --label "Private Key"
keygen --key-type rsa:4096 --id 40 --label "Private Key"
keygen --key-type EC:prime256v1 --id 20 --label "ECC Key"
keygen --key-type EC:secp521r1 --id 30 --label "ECC2 Key"

# p11test, and its log against the reference.
pushd "$P11TEST_DIR"
rm -f sc-hsm-emulator.json
on_card ./p11test -m "$MODULE" -s 0 -p "$PIN" -o sc-hsm-emulator.json
popd
if ! diff -u3 "$REFERENCE" "$P11TEST_DIR/sc-hsm-emulator.json"; then
	echo "p11test's log differs from $REFERENCE (the diff above): if OpenSC's change is" \
		"intended, record the new log as the reference; otherwise something broke" >&2
	exit 1
fi
