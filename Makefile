# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# starttls-guard: `make` builds build/starttls-guard (the BPF object is
# embedded through a generated skeleton); `make test` runs every test.
.DELETE_ON_ERROR:

CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= gcc
OUT      := build
CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Wextra -Iinclude -Iuser -I$(OUT)
LDLIBS   := -lbpf -lelf -lz -lpcap
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -mcpu=v2 \
	      -Wall -Wextra -Iinclude -Ibpf -I.

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

BPF_SRC  := bpf/starttls_guard.bpf.c
BPF_HDRS := $(wildcard bpf/*.h include/*.h) vmlinux.h
USER_HDRS := $(wildcard user/*.h include/*.h)

all: $(OUT)/starttls-guard

$(OUT):
	$(Q)mkdir -p $@

$(OUT)/starttls_guard.bpf.o: $(BPF_SRC) $(BPF_HDRS) | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp
	$(Q)rm -f $@.tmp

$(OUT)/starttls_guard.skel.h: $(OUT)/starttls_guard.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name starttls_guard_bpf > $@

USER_SRC := $(wildcard user/*.c)

$(OUT)/starttls-guard: $(USER_SRC) $(OUT)/starttls_guard.skel.h $(USER_HDRS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(USER_SRC) -o $@ $(LDLIBS)

# One binary that runs on any x86-64 Linux with BTF: Debian's libbpf.a,
# libelf.a, libz.a and libpcap.a linked in (the container image is made
# of it). libpcap.a brings libdbus-1.a, which refers to libsystemd's
# socket activation; Debian ships no libsystemd.a, and reading captures
# never gets there: user/static/sd.c answers "no sockets passed".
$(OUT)/static/starttls-guard: $(USER_SRC) user/static/sd.c $(OUT)/starttls_guard.skel.h $(USER_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -static $(USER_SRC) user/static/sd.c -o $@ $(LDLIBS) \
		-ldbus-1 >$@.log 2>&1 || { cat $@.log >&2; rm -f $@.log; exit 1; }
	$(Q)rm -f $@.log # (glibc's warnings on getpwnam and the like: unused)

static: $(OUT)/static/starttls-guard

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the man pages,
# the systemd unit, and the sample configuration (not over an existing one).
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

install: $(OUT)/starttls-guard
	$(Q)install -D -m 0755 $(OUT)/starttls-guard $(DESTDIR)$(SBINDIR)/starttls-guard
	$(Q)install -D -m 0644 man/starttls-guard.8 $(DESTDIR)$(MANDIR)/man8/starttls-guard.8
	$(Q)install -D -m 0644 man/starttls-guard.conf.5 $(DESTDIR)$(MANDIR)/man5/starttls-guard.conf.5
	$(Q)install -d $(DESTDIR)$(UNITDIR)
	$(Q)sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		deploy/starttls-guard.service > $(DESTDIR)$(UNITDIR)/starttls-guard.service
	$(Q)chmod 0644 $(DESTDIR)$(UNITDIR)/starttls-guard.service
	$(Q)install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/starttls-guard
	$(Q)test -e $(DESTDIR)$(SYSCONFDIR)/starttls-guard/starttls-guard.conf || \
		install -m 0644 deploy/starttls-guard.conf $(DESTDIR)$(SYSCONFDIR)/starttls-guard/starttls-guard.conf

uninstall:
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/starttls-guard $(DESTDIR)$(MANDIR)/man8/starttls-guard.8 \
		$(DESTDIR)$(MANDIR)/man5/starttls-guard.conf.5 $(DESTDIR)$(UNITDIR)/starttls-guard.service

# The container image (deploy/Containerfile), from the static binary.
IMAGE ?= localhost/starttls-guard:$(shell sed -n 's/.*STG_VERSION "\(.*\)"/\1/p' include/starttls_guard.h)
image: $(OUT)/static/starttls-guard
	$(Q)cp deploy/starttls-guard.conf $(OUT)/static/
	$(Q)podman build -q -f deploy/Containerfile -t $(IMAGE) $(OUT)/static

# Tests: the protocol logic on the host, the real program through
# BPF_PROG_TEST_RUN, and end to end in network namespaces.
$(OUT)/test_smtp: tests/test_smtp.c tests/feed.h include/smtp.h user/cidr.h | $(OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -fsanitize=address,undefined $< -o $@

$(OUT)/test_packets: tests/test_packets.c tests/pkt.h tests/feed.h $(OUT)/starttls_guard.skel.h $(USER_HDRS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $< -o $@ $(LDLIBS)

tests: $(OUT)/starttls-guard $(OUT)/test_smtp $(OUT)/test_packets \
	$(OUT)/static/starttls-guard $(OUT)/static/test_packets $(OUT)/static/smtp_pair

# Other kernels (also part of make test): Debian's 5.10, 6.1 and 6.12
# booted under qemu with an initramfs of busybox-static and these static
# binaries, and this machine's own; README=1 writes the table into
# README.md.
$(OUT)/static/test_packets: tests/test_packets.c tests/pkt.h tests/feed.h $(OUT)/starttls_guard.skel.h $(USER_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -static -Itests $< -o $@ -lbpf -lelf -lz >$@.log 2>&1 || \
		{ cat $@.log >&2; rm -f $@.log; exit 1; }
	$(Q)rm -f $@.log

$(OUT)/static/smtp_pair: tests/kernels/smtp_pair.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -static $< -o $@

kernels: $(OUT)/static/starttls-guard $(OUT)/static/test_packets $(OUT)/static/smtp_pair
	$(Q)bash tests/kernels/kernels.sh $(if $(README),--readme)

test: tests
	$(Q)bash tests/run.sh

# The interoperability matrix alone (also part of make test): real
# servers x real clients through the guard; README=1 writes the matrix
# into tests/interop/README.md.
interop: $(OUT)/starttls-guard
	$(Q)bash tests/interop/interop.sh $(if $(README),--readme)

# libFuzzer on the protocol logic (host build, ASan, UBSan): FUZZ_TIME
# seconds, corpus kept in build/fuzz-corpus.
FUZZ_TIME ?= 300
$(OUT)/fuzz_smtp: tests/fuzz/fuzz_smtp.c tests/feed.h include/smtp.h | $(OUT)
	$(call msg,CC,$@)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Itests $< -o $@

fuzz: $(OUT)/fuzz_smtp
	$(Q)mkdir -p $(OUT)/fuzz-corpus
	$(Q)$(OUT)/fuzz_smtp -max_total_time=$(FUZZ_TIME) -dict=tests/fuzz/smtp.dict \
		-artifact_prefix=$(OUT)/ $(OUT)/fuzz-corpus

# Benchmarks (not tests: nothing in make test depends on timing): the
# per-packet cost against a floor, the connection table's scale and
# memory, throughput and STARTTLS sessions through a veth pair against no
# program and against an iptables rule set. QUICK=1 for a short run.
# Results in bench/results.json (bench/README.md: the latest).
$(OUT)/bench: bench/bench.c tests/pkt.h $(OUT)/starttls_guard.skel.h $(USER_HDRS) $(OUT)/starttls-guard
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $< -o $@ $(LDLIBS)

bench: $(OUT)/bench
	$(Q)mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	$(Q)$(OUT)/bench $(if $(QUICK),--quick) --json bench/results.json
	$(Q)bash bench/throughput.sh $(if $(QUICK),2 1,10 3) bench/results.json

# A demo on real traffic: two namespaces, Postfix, a plaintext client
# reset and a STARTTLS client delivered.
demo: $(OUT)/starttls-guard
	$(Q)bash tests/demo.sh

clean:
	$(Q)rm -rf $(OUT)

.PHONY: all tests test interop kernels demo fuzz clean static install uninstall image bench
