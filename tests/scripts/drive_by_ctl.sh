#!/usr/bin/env bash
# A script drives two running nodes through their control sockets alone (`torrent ctl
# --json`), as a deployment script would: share, download and wait, limits, pause, resume,
# cancel, unshare, exit. Every JSON answer and every exit code is checked; the first surprise
# ends the script with exit 1 and says what it was.
#
#   drive_by_ctl.sh TORRENT HOLDER_DIR GETTER_DIR
#
# HOLDER_DIR holds f.bin, g.bin and h.bin (a few MiB each); both nodes run (stdin closed is
# fine) and know the same tracker. Needs jq.
set -uo pipefail
torrent=$1 holder=$2 getter=$3

fail() { echo "drive_by_ctl: $*" >&2; exit 1; }

# ask EXPECTED_CODE DIR JQ_CHECK ARGS...: runs `torrent ctl --dir DIR --json ARGS...`, checks
# its exit code and that the JSON reply passes JQ_CHECK; the reply is left in $reply.
ask() {
    local expected=$1 dir=$2 check=$3
    shift 3
    reply=$("$torrent" ctl --dir "$dir" --json "$@")
    local code=$?
    [ "$code" = "$expected" ] || fail "ctl $* exited $code, not $expected: $reply"
    jq -e "$check" >/dev/null <<<"$reply" || fail "ctl $* answered $reply; expected $check"
}

# until_verified DIR ID: asks for download ID's state until some of it verified.
until_verified() {
    for _ in $(seq 2000); do
        ask 0 "$1" '.ok' download-state "$2"
        jq -e '.download.verified_bytes > 0' >/dev/null <<<"$reply" && return 0
    done
    fail "download $2 verified nothing: $reply"
}

ask 0 "$holder" '.ok and .version == 1' send f.bin
ask 0 "$getter" '.ok and .download.state == "done" and .download.verified_bytes > 0' \
    download f.bin --wait
cmp -s "$holder/f.bin" "$getter/f.bin" || fail "f.bin differs"
ask 0 "$getter" '.status.files | any(.name == "f.bin" and .complete)' status

# A slow holder, so that a download can be caught half way.
ask 0 "$holder" '.ok and .message == "upload limit: 1.0 MiB/s"' limit --up 1M
ask 0 "$getter" '.ok' limit --down 64M
ask 0 "$getter" '.status.download_limit_bytes_per_s == 67108864' status
ask 0 "$holder" '.ok' send g.bin
ask 0 "$holder" '.ok' send h.bin

ask 0 "$getter" '.ok and .download.state == "running"' download g.bin
id=$(jq -r .download.id <<<"$reply")
until_verified "$getter" "$id"
ask 0 "$getter" ".download.id == $id and .download.state == \"paused\"" pause "$id"
ask 0 "$getter" '.status.downloads | any(.state == "paused")' status
ask 1 "$getter" '.ok == false' pause "$id"
ask 0 "$getter" ".download.id == $id and .download.state == \"running\"" resume g.bin
ask 0 "$getter" '.download.state == "done"' download-state "$id" --wait
cmp -s "$holder/g.bin" "$getter/g.bin" || fail "g.bin differs"

ask 0 "$getter" '.ok' download h.bin
id=$(jq -r .download.id <<<"$reply")
until_verified "$getter" "$id"
ask 0 "$getter" '.download.state == "cancelled"' cancel "$id"
[ ! -e "$getter/h.bin" ] || fail "a cancelled download left h.bin"
[ -z "$(ls -A "$getter/.torrent/partial")" ] || fail "a cancelled download left partial state"
ask 1 "$getter" '.download.state == "cancelled"' download-state "$id" --wait
ask 1 "$getter" '.ok == false and (.error | test("cancelled, not paused"))' resume "$id"

ask 0 "$holder" '.ok and (.message | startswith("no longer sharing f.bin"))' unshare f.bin
ask 1 "$holder" '.ok == false' unshare f.bin
ask 0 "$holder" '.ok and .message == "upload limit: none"' limit --up off
ask 0 "$getter" '.ok' exit
ask 0 "$holder" '.ok' exit
echo "drive_by_ctl: every answer as expected"
