#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# tests/kernels/kernels.sh - make kernels: the guard on the kernels people
# run. Debian's cloud kernels 5.10 (Debian 11), 6.1 (Debian 12) and 6.12
# (Debian 12's linux-6.12, the series of Debian 13) are fetched with
# apt-get download (the newest build in the apt lists: the machine's for
# 6.1 and 6.12, which need bookworm and bookworm-security in its sources;
# a list of our own for 5.10) and cached in build/kernels, then booted under qemu (TCG) with an initramfs of
# busybox-static and the static binaries; the machine's own kernel runs
# the same steps directly, in a network namespace of its own. The steps
# are tests/kernels/steps.sh's. Prints one line per kernel and step and
# ends with "N passed, N failed"; --readme writes the table into
# README.md. Needs root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=$root/build/kernels
bins=$root/build/static
readme=0
[ "${1:-}" = --readme ] && readme=1
passed=0
failed=0
table=
counts= # "KERNEL:CASES" of each packet suite run
mkdir -p "$cache/debs"
[ "$(id -u)" = 0 ] || { echo "FAIL - kernels: needs root (namespaces, BPF)"; echo "0 passed, 1 failed"; exit 1; }
work=$(mktemp -d /tmp/stg-kernels.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'echo "kernels: interrupted"; exit 130' INT TERM

for b in starttls-guard test_packets smtp_pair; do
	[ -x "$bins/$b" ] || { echo "FAIL - kernels: $bins/$b missing (make kernels builds it)"; echo "0 passed, 1 failed"; exit 1; }
done

# Debian 11's kernels are in bullseye-security, not in this machine's
# sources: a list of our own (fetched again after a day), /etc/apt
# untouched.
bullseye=$cache/apt-bullseye
apt_bullseye=(-o "Dir::Etc::SourceList=$bullseye/sources.list"
	-o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$bullseye/lists"
	-o "Dir::Cache=$bullseye/cache")
mkdir -p "$bullseye/lists/partial" "$bullseye/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main" \
	>"$bullseye/sources.list"

# fetch SERIES: the newest cloud kernel of SERIES that downloads, unpacked;
# prints its directory. An older build is tried when the newest is gone
# from the mirror (a listed build can be), and one already in the cache
# serves when apt lists none. apt's errors go to $work/SERIES.apt.
fetch() {
	local series=$1 re opts=() pkg deb dir err=$work/$1.apt
	case $series in
	5.10) re='^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$'; opts=("${apt_bullseye[@]}")
	      [ -n "$(find "$bullseye/updated" -mtime -1 2>/dev/null)" ] ||
		{ apt-get "${opts[@]}" update -qq >/dev/null 2>>"$err" &&
		  touch "$bullseye/updated"; } ;;
	6.1) re='^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' ;;
	6.12) re='^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$' ;;
	esac
	for pkg in $( {
			apt-cache "${opts[@]}" search --names-only "$re" 2>>"$err" | awk '{print $1}'
			find "$cache" -mindepth 2 -maxdepth 2 -name .done -printf '%h\n' |
				xargs -r -n1 basename | grep -E "$re"
		} | sort -V -r -u | head -n 4); do
		dir=$cache/$pkg
		if [ -e "$dir/.done" ]; then echo "$dir"; return 0; fi
		deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n1)
		if [ -z "$deb" ]; then
			(cd "$cache/debs" && apt-get "${opts[@]}" download -qq "$pkg" >/dev/null 2>>"$err") || continue
			deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n1)
		fi
		[ -n "$deb" ] || continue
		rm -rf "$dir" && dpkg -x "$deb" "$dir" && touch "$dir/.done" && { echo "$dir"; return 0; }
	done
	return 1
}

# initramfs KDIR OUT: busybox, the binaries, steps.sh, the modules the
# steps need (veth, clsact, cls_bpf; 6.12's are xz-compressed).
initramfs() {
	local kdir=$1 out=$2 r=$work/root m a
	rm -rf "$r" && mkdir -p "$r"/{bin,dev,proc,sys,tmp,modules,stg}
	cp /bin/busybox "$r/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
	done
	mknod -m 600 "$r/dev/console" c 5 1
	cp "$bins"/{starttls-guard,test_packets,smtp_pair} "$here/steps.sh" "$r/stg/"
	for m in veth sch_ingress cls_bpf; do
		a=$(find "$kdir/lib/modules" -name "$m.ko*" | head -n1)
		[ -z "$a" ] && continue # built in
		case $a in
		*.xz) xz -dc "$a" >"$r/modules/$m.ko" ;;
		*) cp "$a" "$r/modules/$m.ko" ;;
		esac
	done
	cat >"$r/init" <<-'EOF'
	#!/bin/sh
	export PATH=/bin
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev 2>/dev/null
	mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf
	mount -t tmpfs tmpfs /tmp
	for m in /modules/*.ko; do [ -e "$m" ] && insmod "$m"; done
	echo "@@ kernel $(uname -r)"
	sh /stg/steps.sh /stg
	poweroff -f
	EOF
	chmod 755 "$r/init"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
}

# report KERNEL-LABEL OUTPUT-FILE: the steps' lines as tests
report() {
	local label=$1 out=$2 line steps=0 what=
	while IFS= read -r line; do
		case $line in
		"@@ ok "*) passed=$((passed + 1)); steps=$((steps + 1))
			echo "ok - kernel $label: ${line#@@ ok }"
			case $line in
			*"attach ("*) what="$what${what:+, }$(sed 's/.*attach (\([a-z]*\)).*/\1/; s/^auto$/clsact (chosen by auto)/' <<<"$line")" ;;
			esac ;;
		"@@ FAIL "*) failed=$((failed + 1)); steps=$((steps + 1))
			echo "FAIL - kernel $label: ${line#@@ FAIL }" ;;
		FAIL*) echo "    $line" ;;
		"    | "*) echo "$line" ;; # a refusal, as the user sees it
		esac
	done <"$out"
	if ! grep -q '^@@ end' "$out" || [ $steps -lt 2 ]; then
		failed=$((failed + 1))
		echo "FAIL - kernel $label: did not run to the end; the console's last lines:"
		tail -n 15 "$out" | sed 's/^/    /'
	fi
	cases=$(grep -E '^@@ ok packet suite' "$out" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	skipped=$(grep -E '^@@ ok packet suite' "$out" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
	[ -n "$cases" ] && counts="$counts $label:$((cases + ${skipped:-0}))"
	table="$table| $label | $3 | ${what:-none} | packet suite $((${cases:-0} + ${skipped:-0})) cases (${cases:-0} run${skipped:+, $skipped skipped: no bpf_loop}), attach/detach with a reset and an upgrade | $(date -u +%Y-%m-%d) |"$'\n'
}

for series in 5.10 6.1 6.12; do
	if ! kdir=$(fetch $series); then
		failed=$((failed + 1))
		why=$(grep -m1 -E '^(E:|W: Failed)' "$work/$series.apt" 2>/dev/null)
		echo "FAIL - kernel $series: no Debian cloud kernel of this series could be downloaded: ${why:-apt lists none (6.1 and 6.12 need bookworm and bookworm-security in the apt sources)}"
		continue
	fi
	vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
	kver=${vmlinuz##*/vmlinuz-}
	initramfs "$kdir" "$work/initrd.gz"
	# --foreground: a Ctrl-C reaches qemu
	timeout --foreground 900 qemu-system-x86_64 -accel tcg -m 1G -smp 1 -nographic \
		-no-reboot -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
		-append "console=ttyS0 quiet panic=-1" >"$work/$series.out" 2>&1 </dev/null
	case $series in
	5.10) dist="Debian 11" ;;
	6.1) dist="Debian 12" ;;
	6.12) dist="Debian 12's linux-6.12 (Debian 13's series)" ;;
	esac
	report "$kver" "$work/$series.out" "$dist"
done

# The machine's own kernel, directly
unshare -n sh "$here/steps.sh" "$bins" >"$work/own.out" 2>&1
report "$(uname -r)" "$work/own.out" "this machine"

# Every case is named on every kernel: run, or skipped with why
# shellcheck disable=SC2086 # one word a kernel
kinds=$(printf '%s\n' $counts | cut -d: -f2 | sort -u | wc -l)
if [ -n "$counts" ] && [ "$kinds" = 1 ]; then
	passed=$((passed + 1))
	echo "ok - kernels: the packet suite names the same ${counts##*:} cases on every kernel"
else
	failed=$((failed + 1))
	echo "FAIL - kernels: the packet suite's cases differ (kernel:cases):$counts"
fi

if [ $readme = 1 ] && [ $failed = 0 ]; then
	python3 - "$root/README.md" "$table" <<-'PY'
	import re, sys
	path, rows = sys.argv[1:3]
	head = "| kernel | distribution | attach mode | tested | date |\n|---|---|---|---|---|\n"
	text = open(path).read()
	block = "<!-- kernels -->\n" + head + rows.rstrip("\n") + "\n<!-- /kernels -->"
	text = re.sub(r"<!-- kernels -->.*?<!-- /kernels -->", lambda m: block, text, flags=re.S)
	open(path, "w").write(text)
	PY
	echo "wrote the table into README.md"
fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
