/*
 * ctl_handover.h: the handover plan, the one place that decides which VM
 * announces a set of service IPs and which orders put the network in that
 * state. Pure: it reads the model and nothing else, so the migration
 * cutover and cut-back, a failover's promotion and the reconcile after a
 * takeover all get the same answer for the same fleet.
 *
 * A group is every VM whose service IPs overlap (a primary, its standbys,
 * a primary a failover replaced, a copy made under another name). Its
 * owner, the one VM that may announce the IPs, is the group's running
 * primary that no other primary of the group replaces (meta.replaces) and
 * that no promotion involves. A standby is never an owner; a failover
 * names its standby as the owner to be (in.promote). Two owners by these
 * rules (a doubled VM) are ordered by rule, never by name first: bound
 * (the guest holds the IPs, from telemetry), then at home, then name; the
 * others are fenced.
 */
#ifndef CTL_HANDOVER_H
#define CTL_HANDOVER_H

#include "controller/ctl_model.h"

enum ctl_ho_op {
	HO_FENCE,	/* host agent: the VM's bridge port down, its routes withdrawn */
	HO_ANNOUNCE,	/* host agent: routes, neighbours, GARP / NA from the VM's MAC */
	HO_EDGE_POINT,	/* home edge: IP/32 via the host */
	HO_EDGE_UNPOINT,	/* home edge: delete IP/32 via the host (that route only) */
	HO_WITHDRAW,	/* host agent: stop announcing, delete routes and neighbours */
	HO_EDGE_CLEAR,	/* home edge: delete netmigrate's IP/32 whatever its next hop */
};

/* Which part of the handover an order is: the owner's own announcement,
 * the edge's route, or cleaning where the IPs were or must not be. */
enum ctl_ho_part { HO_PART_OWNER, HO_PART_EDGE, HO_PART_CLEAN };

struct ctl_ho_order {
	enum ctl_ho_op op;
	enum ctl_ho_part part;
	int host;		/* host orders: the agent's host; edge orders: the via host */
	const struct ctl_vm *vm;	/* whose IPs (and MAC) the order names */
};

#define CTL_HO_MAX 24
#define CTL_HO_GROUP_MAX 16

struct ctl_ho_in {
	const struct ctl_vm *vm;	/* any VM of the group */
	int at;			/* where vm runs (a cutover's destination, a scan's
				 * host): taken as running there; -1: as the model says */
	const struct ctl_vm *promote;	/* a standby being promoted: the owner, every
					 * other primary of the group replaced */
	const int *held;	/* hosts that may hold routes for the IPs (where a VM
				 * ran, where a job was): cleaned, except the owner's */
	int nheld;
	int sweep;		/* where the edge's route points is not known (a
				 * reconcile): an owner at home clears it, whatever it is */
};

struct ctl_ho_plan {
	const struct ctl_vm *owner;	/* NULL: nobody may announce (why says) */
	int at;			/* the owner's host */
	int home;		/* the IPs' home region, -1 unknown */
	int edge;		/* home has an edge agent: 1 */
	struct ctl_ho_order o[CTL_HO_MAX];
	int n;
	int truncated;		/* more orders than CTL_HO_MAX: the rest dropped */
	const struct ctl_vm *group[CTL_HO_GROUP_MAX];
	int ngroup;
	int ndoubled;		/* owners by the rules beyond the chosen one (fenced) */
	char why[160];
};

/* a and b have a service IP in common (addresses compared, prefixes not). */
int ctl_ho_shares(const struct ctl_vm *a, const struct ctl_vm *b);
/* Same IPv4 /24 (the lab's and many providers' per-region prefix size). */
int ctl_ip_same_net(const char *ip, const char *addr);
/* The region whose hosts share the VM's first IP's prefix, or -1. */
int ctl_ho_home(const struct ctl_model *m, const struct ctl_vm *vm);
/* Some primary other than vm says it took over from vm. */
int ctl_ho_replaced(const struct ctl_model *m, const struct ctl_vm *vm);

/*
 * The plan for in->vm's group. Orders come in the order they must be sent
 * (each agent runs its stream in order): fences of other copies first,
 * then the owner's announcement, the edge, the withdrawals. A withdrawal
 * never goes to the owner's host (the IPs are the same there); a fence of
 * another copy there comes before the announcement, which puts the routes
 * back. Returns the number of orders; with no owner, 0 and why.
 */
int ctl_ho_plan(const struct ctl_model *m, const struct ctl_ho_in *in, struct ctl_ho_plan *out);

const char *ctl_ho_op_name(enum ctl_ho_op op);	/* the agent's op: "announce" ... */

/* Where a plan's order goes and what it names besides the VM. */
struct ctl_ho_dest {
	const char *agent;	/* the host's agent, or the home region's edge */
	const char *dev;	/* host orders: the VM bridge; edge orders: NULL */
	const char *via;	/* edge orders: the host's address; host orders: NULL */
};
void ctl_ho_dest(const struct ctl_model *m, const struct ctl_ho_plan *p,
    const struct ctl_ho_order *o, struct ctl_ho_dest *d);

#endif
