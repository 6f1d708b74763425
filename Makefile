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
LDLIBS   := -lbpf -lelf -lz
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

# Tests: the protocol logic on the host, the real program through
# BPF_PROG_TEST_RUN, and end to end in network namespaces.
$(OUT)/test_smtp: tests/test_smtp.c tests/feed.h include/smtp.h user/cidr.h | $(OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -fsanitize=address,undefined $< -o $@

$(OUT)/test_packets: tests/test_packets.c tests/pkt.h tests/feed.h $(OUT)/starttls_guard.skel.h $(USER_HDRS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $< -o $@ $(LDLIBS)

tests: $(OUT)/starttls-guard $(OUT)/test_smtp $(OUT)/test_packets

test: tests
	$(Q)bash tests/run.sh

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

# A demo on real traffic: two namespaces, Postfix, a plaintext client
# reset and a STARTTLS client delivered.
demo: $(OUT)/starttls-guard
	$(Q)bash tests/demo.sh

clean:
	$(Q)rm -rf $(OUT)

.PHONY: all tests test demo fuzz clean
