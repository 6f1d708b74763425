// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Attaching to an interface. TCX (kernel 6.6+): one BPF link per hook,
 * pinned so that it outlives the loader, replaced atomically with
 * bpf_link_update(). clsact (older kernels): a cls_bpf filter with our own
 * handle and priority per hook, replaced with BPF_TC_F_REPLACE; the qdisc
 * is created only if missing and removed only if we created it and no
 * filter of anyone else is left on it. Nothing of anyone else is touched.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tc.h"

/* Newer than Debian's libbpf 1.1 headers. */
#define STG_BPF_TCX_INGRESS 46
#define STG_BPF_TCX_EGRESS 47

void stg_tc_link_path(char *buf, size_t len, const struct stg_iface_key *k,
		      bool ingress)
{
	snprintf(buf, len, "%s/link_%llu_%u_%s", stg_pin_dir,
		 (unsigned long long)k->netns, k->ifindex,
		 ingress ? "in" : "eg");
}

/* --- TCX --------------------------------------------------------------- */

static int tcx_attach_one(const struct stg_iface_key *k, int prog,
			  bool ingress)
{
	char path[128];
	int fd, err;

	stg_tc_link_path(path, sizeof(path), k, ingress);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		/* Already attached: swap the program, no gap. */
		err = bpf_link_update(fd, prog, NULL);
		close(fd);
		return err ? -errno : 0;
	}
	fd = bpf_link_create(prog, k->ifindex,
			     ingress ? STG_BPF_TCX_INGRESS : STG_BPF_TCX_EGRESS,
			     NULL);
	if (fd < 0)
		return -errno;
	err = bpf_obj_pin(fd, path) ? -errno : 0;
	close(fd); /* the pin keeps it attached */
	return err;
}

static void tcx_detach_one(const struct stg_iface_key *k, bool ingress)
{
	char path[128];
	int fd;

	stg_tc_link_path(path, sizeof(path), k, ingress);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		bpf_link_detach(fd); /* even if someone else holds it open */
		close(fd);
	}
	unlink(path);
}

/* --- clsact ------------------------------------------------------------ */

/* Number of filters on a clsact hook (any owner), or -errno. */
static int clsact_filter_count(int ifindex, bool ingress)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tc;
	} req = {
		.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg)),
		.nh.nlmsg_type = RTM_GETTFILTER,
		.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		.tc.tcm_family = AF_UNSPEC,
		.tc.tcm_ifindex = ifindex,
		.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS
							       : TC_H_MIN_EGRESS),
	};
	char buf[16384];
	int fd, n = 0, done = 0;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
		n = -errno;
		goto out;
	}
	while (!done) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *nh;

		if (len < 0) {
			n = -errno;
			break;
		}
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len);
		     nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(nh);

				n = e->error;
				done = 1;
				break;
			}
			if (nh->nlmsg_type == RTM_NEWTFILTER)
				n++;
		}
	}
out:
	close(fd);
	return n;
}

static int clsact_attach_one(int ifindex, int prog, bool ingress)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog,
		    .handle = STG_TC_HANDLE, .priority = STG_TC_PRIO,
		    .flags = BPF_TC_F_REPLACE);

	return bpf_tc_attach(&hook, &opts);
}

static void clsact_detach_one(int ifindex, bool ingress)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = STG_TC_HANDLE,
		    .priority = STG_TC_PRIO);

	bpf_tc_detach(&hook, &opts);
}

/* Remove the clsact qdisc if we made it and nobody else uses it. */
static void clsact_release(int ifindex, const struct stg_iface *cur)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);

	if (!cur->qdisc_created || clsact_filter_count(ifindex, true) != 0 ||
	    clsact_filter_count(ifindex, false) != 0)
		return;
	bpf_tc_hook_destroy(&hook);
}

static int clsact_attach(int ifindex, const char *ifname, int prog_in,
			 int prog_eg, const struct stg_iface *cur,
			 struct stg_iface *out)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	int err;

	out->mode = STG_TC_CLSACT;
	out->qdisc_created = cur ? cur->qdisc_created : 0;
	if (!cur) {
		err = bpf_tc_hook_create(&hook);
		if (!err)
			out->qdisc_created = 1;
		else if (err != -EEXIST) {
			fprintf(stderr, "Couldn't create clsact on %s: %s\n",
				ifname, strerror(-err));
			return err;
		}
	}
	err = clsact_attach_one(ifindex, prog_in, true);
	if (!err)
		err = clsact_attach_one(ifindex, prog_eg, false);
	if (err) {
		fprintf(stderr,
			"Couldn't attach to %s with clsact: %s%s\n", ifname,
			strerror(-err),
			err == -EINVAL || err == -ENOENT
				? " (is an old 'ingress' qdisc in the way?)"
				: "");
		if (!cur) {
			clsact_detach_one(ifindex, true);
			clsact_detach_one(ifindex, false);
			clsact_release(ifindex, out);
		}
		return err;
	}
	return 0;
}

/* --- either ------------------------------------------------------------ */

int stg_tc_attach(const struct stg_iface_key *k, const char *ifname,
		  int prog_in, int prog_eg, enum stg_tc_want want,
		  const struct stg_iface *cur, struct stg_iface *out)
{
	int err;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", ifname);

	/* Switching modes: take the old attachment down first. */
	if (cur && ((want == STG_WANT_TCX && cur->mode != STG_TC_TCX) ||
		    (want == STG_WANT_CLSACT && cur->mode != STG_TC_CLSACT))) {
		stg_tc_detach(k, cur);
		cur = NULL;
	}
	if (cur && cur->mode == STG_TC_CLSACT)
		return clsact_attach(k->ifindex, ifname, prog_in, prog_eg, cur,
				     out);

	if (want != STG_WANT_CLSACT) {
		err = tcx_attach_one(k, prog_in, true);
		if (!err)
			err = tcx_attach_one(k, prog_eg, false);
		if (!err) {
			out->mode = STG_TC_TCX;
			return 0;
		}
		if (!cur) {
			tcx_detach_one(k, true);
			tcx_detach_one(k, false);
		}
		if (want == STG_WANT_TCX || cur) {
			fprintf(stderr, "Couldn't attach to %s with TCX: %s\n",
				ifname, strerror(-err));
			return err;
		}
		/* No TCX in this kernel (before 6.6): clsact. */
	}
	return clsact_attach(k->ifindex, ifname, prog_in, prog_eg, NULL, out);
}

int stg_tc_detach(const struct stg_iface_key *k, const struct stg_iface *cur)
{
	if (cur->mode == STG_TC_TCX) {
		tcx_detach_one(k, true);
		tcx_detach_one(k, false);
	} else {
		clsact_detach_one(k->ifindex, true);
		clsact_detach_one(k->ifindex, false);
		clsact_release(k->ifindex, cur);
	}
	return 0;
}
