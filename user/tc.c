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
#define STG_BPF_F_BEFORE (1U << 3)	/* with no relative: first of all */

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
	/* First on the hook: a program ahead of ours that returns a final
	 * verdict would let traffic pass unjudged. */
	LIBBPF_OPTS(bpf_link_create_opts, o, .flags = STG_BPF_F_BEFORE);

	fd = bpf_link_create(prog, k->ifindex,
			     ingress ? STG_BPF_TCX_INGRESS : STG_BPF_TCX_EGRESS,
			     &o);
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

/* Dump tc objects (@type: RTM_GETQDISC or RTM_GETTFILTER) of @ifindex
 * under @parent, calling @fn for each. Returns 0 or -errno. */
static int tc_dump(int type, int ifindex, __u32 parent,
		   void (*fn)(const struct nlmsghdr *, void *), void *arg)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tc;
	} req = {
		.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg)),
		.nh.nlmsg_type = type,
		.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		.tc.tcm_family = AF_UNSPEC,
		.tc.tcm_ifindex = ifindex,
		.tc.tcm_parent = parent,
	};
	char buf[16384];
	int fd, err = 0, done = 0;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
		err = -errno;
		goto out;
	}
	while (!done) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *nh;

		if (len < 0) {
			err = -errno;
			break;
		}
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len);
		     nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				err = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
				done = 1;
				break;
			}
			if (((struct tcmsg *)NLMSG_DATA(nh))->tcm_ifindex ==
			    ifindex)
				fn(nh, arg);
		}
	}
out:
	close(fd);
	return err;
}

static void count_filter(const struct nlmsghdr *nh, void *arg)
{
	if (nh->nlmsg_type == RTM_NEWTFILTER)
		++*(int *)arg;
}

/* Number of filters on a clsact hook (any owner), or -errno. */
static int clsact_filter_count(int ifindex, bool ingress)
{
	int n = 0, err;

	err = tc_dump(RTM_GETTFILTER, ifindex,
		      TC_H_MAKE(TC_H_CLSACT,
				ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS),
		      count_filter, &n);
	return err ? err : n;
}

/* The kind of the qdisc in the ingress slot ("clsact", "ingress"). */
static void ingress_kind(const struct nlmsghdr *nh, void *arg)
{
	const struct tcmsg *tc = NLMSG_DATA(nh);
	const struct rtattr *a = (const void *)((const char *)tc +
						NLMSG_ALIGN(sizeof(*tc)));
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*tc));

	if (nh->nlmsg_type != RTM_NEWQDISC || tc->tcm_parent != TC_H_INGRESS)
		return;
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == TCA_KIND)
			snprintf(arg, 16, "%s", (const char *)RTA_DATA(a));
}

/* Add our filter, or with @replace swap the program of ours in place. */
static int clsact_attach_one(int ifindex, int prog, bool ingress, bool replace)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog,
		    .handle = STG_TC_HANDLE, .priority = STG_TC_PRIO,
		    .flags = replace ? BPF_TC_F_REPLACE : 0);

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

	char kind[16] = "";

	out->mode = STG_TC_CLSACT;
	out->qdisc_created = cur ? cur->qdisc_created : 0;
	/* An old "ingress" qdisc takes the slot of clsact and would take
	 * both our filters, leaving egress unguarded. */
	tc_dump(RTM_GETQDISC, ifindex, 0, ingress_kind, kind);
	if (kind[0] && strcmp(kind, "clsact")) {
		fprintf(stderr,
			"starttls-guard: couldn't attach to %s: an '%s' qdisc "
			"is in the way of clsact (remove it with 'tc qdisc del "
			"dev %s %s' if nothing needs it)\n",
			ifname, kind, ifname, kind);
		return -EEXIST;
	}
	if (!cur) {
		err = bpf_tc_hook_create(&hook);
		if (!err)
			out->qdisc_created = 1;
		else if (err != -EEXIST) {
			fprintf(stderr, "starttls-guard: couldn't create clsact on %s: %s\n",
				ifname, strerror(-err));
			return err;
		}
	}
	/* A new attachment adds filters, and fails on one that has our
	 * handle already (another guard's, with its own pin directory):
	 * only ours are replaced. */
	err = clsact_attach_one(ifindex, prog_in, true, cur);
	if (!err) {
		err = clsact_attach_one(ifindex, prog_eg, false, cur);
		if (err && !cur)
			clsact_detach_one(ifindex, true);
	}
	if (err) {
		fprintf(stderr,
			"starttls-guard: couldn't attach to %s with clsact: "
			"%s%s\n", ifname,
			strerror(-err),
			err == -EEXIST ? " (a filter with starttls-guard's "
					 "handle is there: another guard's?)"
			: err == -EINVAL || err == -ENOENT
				? " (another program's filter at priority 1 "
				  "with another protocol is in the way?)"
				: "");
		if (!cur)
			clsact_release(ifindex, out);
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

	/* Switching modes: the new attachment first, then the old one goes
	 * (both run for a moment; the second sees judged bytes again and
	 * passes them). If the new one fails, the old one stays. */
	if (cur && ((want == STG_WANT_TCX && cur->mode != STG_TC_TCX) ||
		    (want == STG_WANT_CLSACT && cur->mode != STG_TC_CLSACT))) {
		err = stg_tc_attach(k, ifname, prog_in, prog_eg, want, NULL,
				    out);
		if (!err)
			stg_tc_detach(k, cur);
		return err;
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
			fprintf(stderr,
				"starttls-guard: couldn't attach to %s with TCX: %s\n",
				ifname, strerror(-err));
			return err;
		}
		/* No TCX in this kernel (before 6.6): clsact. */
	}
	return clsact_attach(k->ifindex, ifname, prog_in, prog_eg, NULL, out);
}

/* Names of the filters on a clsact hook that are not ours and run
 * before ours (at a priority as high), appended to @arg. */
struct ahead {
	char *buf;
	size_t len;
	int n;
};

static void filter_ahead(const struct nlmsghdr *nh, void *arg)
{
	const struct tcmsg *tc = NLMSG_DATA(nh);
	const struct rtattr *a = (const void *)((const char *)tc +
						NLMSG_ALIGN(sizeof(*tc)));
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*tc));
	struct ahead *ah = arg;
	const char *kind = "?";
	size_t used = strlen(ah->buf);

	if (nh->nlmsg_type != RTM_NEWTFILTER || !tc->tcm_handle ||
	    TC_H_MAJ(tc->tcm_info) >> 16 > STG_TC_PRIO ||
	    tc->tcm_handle == STG_TC_HANDLE)
		return;
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == TCA_KIND)
			kind = RTA_DATA(a);
	snprintf(ah->buf + used, ah->len - used, "%s%s filter (prio %u, handle 0x%x)",
		 ah->n++ ? ", " : "", kind, TC_H_MAJ(tc->tcm_info) >> 16,
		 tc->tcm_handle);
}

int stg_tc_ahead(const struct stg_iface_key *k, const struct stg_iface *cur,
		 bool ingress, char *buf, size_t len)
{
	__u32 ids[64], cnt = 64, attach_flags = 0, ours = 0;
	struct ahead ah = { .buf = buf, .len = len };
	char path[128];
	int fd;

	*buf = '\0';
	if (cur->mode == STG_TC_TCX) {
		struct bpf_link_info info = {};
		__u32 il = sizeof(info);

		stg_tc_link_path(path, sizeof(path), k, ingress);
		fd = bpf_obj_get(path);
		if (fd < 0)
			return 0;
		if (!bpf_obj_get_info_by_fd(fd, &info, &il))
			ours = info.prog_id;
		close(fd);
	} else {
		tc_dump(RTM_GETTFILTER, k->ifindex,
			TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS
						       : TC_H_MIN_EGRESS),
			filter_ahead, &ah);
	}
	/* TCX programs run before every clsact filter, in their order. */
	if (bpf_prog_query(k->ifindex, ingress ? STG_BPF_TCX_INGRESS
					       : STG_BPF_TCX_EGRESS,
			   0, &attach_flags, ids, &cnt))
		cnt = 0;
	for (__u32 i = 0; i < cnt && ids[i] != ours; i++) {
		size_t used = strlen(buf);

		snprintf(buf + used, len - used, "%sTCX program id %u",
			 ah.n++ ? ", " : "", ids[i]);
	}
	return ah.n;
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
