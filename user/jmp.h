/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Filling the "jmp" program array: the programs the entry programs
 * tail-call. Shared by the loader and the packet tests. */
#ifndef STG_JMP_H
#define STG_JMP_H

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "starttls_guard.h"
#include "starttls_guard.skel.h"

/* Returns 0 or -errno. */
static inline int stg_fill_jmp(struct starttls_guard_bpf *skel)
{
	const struct bpf_program *progs[STG_JMP_MAX] = {
		[STG_JMP_CLI] = skel->progs.stg_scan_cli,
		[STG_JMP_SRV] = skel->progs.stg_scan_srv,
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
