/*
 * ctl_xml.h: domain XML rewriting for standby replicas (libxml2).
 */
#ifndef CTL_XML_H
#define CTL_XML_H

#include <stddef.h>

#include "controller/ctl_model.h"


struct ctl_standby_spec {
	struct ctl_vm_meta meta;	/* the standby's: id (= domain name), role, peer, mgmt */
	char mac[18];			/* its own MAC */
	char bridge[32];		/* the destination host's VM bridge, "" = keep */
	char gateway[48];		/* its region's gateway, "" = keep the primary's */
};

/*
 * The standby's domain XML from the primary's (virDomainGetXMLDesc with
 * VIR_DOMAIN_XML_INACTIVE): a malloc'd string, or NULL with the reason.
 */
char *ctl_xml_standby(const char *xml, const struct ctl_standby_spec *s, char *err,
    size_t errlen);

/*
 * The definition with pf.role= on its kernel command line made to match a
 * role (a promoted standby must boot as a primary). A malloc'd string; NULL
 * with err "" when it already matches, NULL with the reason otherwise.
 */
char *ctl_xml_role(const char *xml, int standby, char *err, size_t errlen);

/* libxml2's global state: set up once on the main thread before any job
 * thread parses (libxml2 < 2.11 wants it), freed at exit. */
void ctl_xml_init(void);
void ctl_xml_fini(void);

#endif
