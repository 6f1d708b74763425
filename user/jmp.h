/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Choosing the scan programs and filling the "jmp" program array with
 * the programs the entry programs tail-call. Shared by the loader and the
 * packet tests. */
#ifndef STG_JMP_H
#define STG_JMP_H

#include <stdbool.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "starttls_guard.h"
#include "starttls_guard.skel.h"

enum stg_scanner {
	STG_SCAN_AUTO = -1,	/* bpf_loop() where the kernel has it */
	STG_SCAN_CHAIN = 0,	/* one chunk per run, chained by tail calls */
	STG_SCAN_LOOP = 1,	/* every chunk in one run, with bpf_loop() */
};

/* 1 when the kernel has bpf_loop() for TC programs */
static inline bool stg_has_loop(void)
{
	return libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_loop,
				       NULL) == 1;
}

/* Before load: keep one pair of scan programs (the other is not loaded:
 * a kernel without bpf_loop() would refuse it). Returns the pair kept. */
static inline enum stg_scanner stg_pick_scanner(struct starttls_guard_bpf *skel,
						enum stg_scanner want)
{
	bool loop = want == STG_SCAN_AUTO ? stg_has_loop() : want == STG_SCAN_LOOP;

	bpf_program__set_autoload(skel->progs.stg_scan_cli_loop, loop);
	bpf_program__set_autoload(skel->progs.stg_scan_cli_auth_loop, loop);
	bpf_program__set_autoload(skel->progs.stg_scan_srv_loop, loop);
	bpf_program__set_autoload(skel->progs.stg_scan_cli, !loop);
	bpf_program__set_autoload(skel->progs.stg_scan_cli_auth, !loop);
	bpf_program__set_autoload(skel->progs.stg_scan_body, !loop);
	bpf_program__set_autoload(skel->progs.stg_scan_pickup, !loop);
	bpf_program__set_autoload(skel->progs.stg_scan_pickup_loop, loop);
	bpf_program__set_autoload(skel->progs.stg_scan_srv, !loop);
	skel->rodata->stg_loop = loop;
	return loop ? STG_SCAN_LOOP : STG_SCAN_CHAIN;
}

/* After load. Returns 0 or -errno. */
static inline int stg_fill_jmp(struct starttls_guard_bpf *skel)
{
	bool loop = skel->rodata->stg_loop;
	const struct bpf_program *progs[STG_JMP_MAX] = {
		[STG_JMP_CLI] = loop ? skel->progs.stg_scan_cli_loop
				     : skel->progs.stg_scan_cli,
		[STG_JMP_SRV] = loop ? skel->progs.stg_scan_srv_loop
				     : skel->progs.stg_scan_srv,
		[STG_JMP_CLI_AUTH] = loop ? skel->progs.stg_scan_cli_auth_loop
					  : skel->progs.stg_scan_cli_auth,
		[STG_JMP_BODY] = loop ? skel->progs.stg_scan_cli_auth_loop
				      : skel->progs.stg_scan_body,
		[STG_JMP_PICKUP] = loop ? skel->progs.stg_scan_pickup_loop
					: skel->progs.stg_scan_pickup,
		[STG_JMP_CHECK] = skel->progs.stg_check,
		[STG_JMP_VIOLATION] = skel->progs.stg_violate,
	};
	int jmp = bpf_map__fd(skel->maps.jmp);

	for (__u32 i = 0; i < STG_JMP_MAX; i++) {
		int fd = bpf_program__fd(progs[i]);

		if (bpf_map_update_elem(jmp, &i, &fd, BPF_ANY))
			return -errno;
	}
	return 0;
}

#endif /* STG_JMP_H */
