#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# Make the regression captures of tests/captures/ again: real sessions
# with Postfix in the namespace lab (tests/lib/lab.sh), no guard on the
# path, recorded with tcpdump in the client's namespace. Then
# "bash tests/replay.sh --bless" writes each capture's expected replay,
# to be read before it is committed. Needs root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/lab.sh
source "$here/../lib/lab.sh"
trap 'kill $cap 2>/dev/null; lab_down' EXIT
lab_up || exit 1
cap=

# record NAME [IFACE [TCPDUMP-ARGS...]]: start a capture of port 25
record() {
	local name=$1 ifc=${2:-$LAB_CLI_IF}
	shift
	[ $# -gt 0 ] && shift
	ip netns exec "$LAB_CLI_NS" tcpdump -Z root -i "$ifc" -s 0 -U \
		--immediate-mode -w "$here/$name.pcap" "$@" tcp port 25 \
		2>/dev/null &
	cap=$!
	# tcpdump is ready once it holds its packet socket
	poll 5 capturing "$cap"
}
stop() { sleep 0.2; kill "$cap"; wait "$cap" 2>/dev/null; cap=; }
swaks_() { lab_swaks --to bob@example.org --from alice@example.org "$@" >/dev/null 2>&1; }

# 1. The ordinary sessions: STARTTLS (IPv4), plaintext MAIL (IPv4), a
#    health check (EHLO, QUIT; IPv6), STARTTLS with PIPELINING (IPv6).
record sessions
swaks_ --server "$LAB_SRV4" --tls
swaks_ --server "$LAB_SRV4"
swaks_ --server "$LAB_SRV6" --quit-after EHLO
swaks_ --server "$LAB_SRV6" --tls --pipeline
stop

# 2. STARTTLS with MAIL FROM in the same segment (CVE-2011-0411; cases
#    1, 2): without a guard, Postfix throws the plaintext away itself.
record injection
lab_cli python3 - "$LAB_SRV4" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], 25), timeout=5)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO c.example.org\r\n")
while not f.readline().startswith(b"250 "):
    pass
s.sendall(b"STARTTLS\r\nMAIL FROM:<alice@example.org>\r\n")
f.readline()
s.close()
PY
stop

# 3. A message of 60 KB over TLS: the sender's TSO packets are captured
#    whole (frames up to 64 KiB, which replay cuts into segments).
head -c 45000 /dev/urandom | base64 >"$LAB_DIR/big.txt"
record big-tls
swaks_ --server "$LAB_SRV4" --tls --body "$LAB_DIR/big.txt"
stop

# 4. Linux cooked capture (-i any, link type LINUX_SLL2): a plaintext
#    session, then one over TLS.
record cooked any
swaks_ --server "$LAB_SRV6"
swaks_ --server "$LAB_SRV6" --tls
stop

# 5. On the server's side (-i any: Linux cooked, which says which packets
#    left the host): a STARTTLS session to it, and a plaintext delivery
#    from it to another host's port 25 (an aiosmtpd sink in the client's
#    namespace), outbound.
lab_cli /usr/bin/python3 -m aiosmtpd -n -l "$LAB_CLI4:25" >/dev/null 2>&1 &
sink=$!
poll 5 lab_srv bash -c "exec 3<>/dev/tcp/$LAB_CLI4/25" 2>/dev/null
ip netns exec "$LAB_SRV_NS" tcpdump -Z root -i any -s 0 -U --immediate-mode \
	-w "$here/outbound.pcap" tcp port 25 2>/dev/null &
cap=$!
poll 5 capturing "$cap"
swaks_ --server "$LAB_SRV4" --tls
lab_srv timeout 20 swaks --server "$LAB_CLI4" --to bob@example.org \
	--from alice@example.org >/dev/null 2>&1
stop
kill "$sink"

# 6. The same as an Ethernet capture (replay needs --local to tell the
#    directions apart there).
python3 - "$here/outbound.pcap" "$here/outbound-eth.pcap" <<'PY'
import struct, sys
raw = open(sys.argv[1], "rb").read()
assert struct.unpack("<I", raw[20:24])[0] == 276, "LINUX_SLL2 expected"
out = bytearray(raw[:20] + struct.pack("<I", 1))
off = 24
while off < len(raw):
    sec, usec, cap, orig = struct.unpack("<IIII", raw[off:off + 16])
    pkt = raw[off + 16:off + 16 + cap]
    eth = b"\0" * 12 + pkt[0:2] + pkt[20:]
    out += struct.pack("<IIII", sec, usec, len(eth), orig - 6) + eth
    off += 16 + cap
open(sys.argv[2], "wb").write(out)
PY

# 7. A connection begun before the capture: the 60 KB message of 3
#    without its first 8 packets (handshake, greeting, EHLO).
python3 - "$here/big-tls.pcap" "$here/midstream.pcap" <<'PY'
import struct, sys
raw = open(sys.argv[1], "rb").read()
out = bytearray(raw[:24])
off, n = 24, 0
while off < len(raw):
    cap, = struct.unpack("<I", raw[off + 8:off + 12])
    if n >= 8:
        out += raw[off:off + 16 + cap]
    off += 16 + cap
    n += 1
open(sys.argv[2], "wb").write(out)
PY

# 8. BIG TCP and TSO captures carry IPv4 total length 0 (case 37): the
#    sessions of 1 with every IPv4 total length zeroed.
python3 - "$here/sessions.pcap" "$here/totlen0.pcap" <<'PY'
import struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
off = 24
while off < len(raw):
    cap, = struct.unpack("<I", raw[off + 8:off + 12])
    pkt = off + 16
    if raw[pkt + 12:pkt + 14] == b"\x08\x00":   # Ethernet, IPv4
        raw[pkt + 16:pkt + 18] = b"\0\0"
    off = pkt + cap
open(sys.argv[2], "wb").write(raw)
PY

# 9. The sessions of 1 in pcapng (converted: tcpdump writes pcap).
python3 - "$here/sessions.pcap" "$here/sessions.pcapng" <<'PY'
import struct, sys
raw = open(sys.argv[1], "rb").read()
magic, = struct.unpack("<I", raw[:4])
assert magic == 0xa1b2c3d4, "little-endian microsecond pcap expected"
linktype, = struct.unpack("<I", raw[20:24])
def block(t, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", t, n) + body + struct.pack("<I", n)
out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
out += block(1, struct.pack("<HHI", linktype, 0, 0))
off = 24
while off < len(raw):
    sec, usec, cap, orig = struct.unpack("<IIII", raw[off:off + 16])
    ts = sec * 1000000 + usec
    out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xffffffff, cap, orig)
                 + raw[off + 16:off + 16 + cap])
    off += 16 + cap
open(sys.argv[2], "wb").write(out)
PY
rm -f "$here/sessions.pcap"
echo "made: $(cd "$here" && ls ./*.pcap ./*.pcapng | tr '\n' ' ')"
