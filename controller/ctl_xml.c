/*
 * ctl_xml.c: a standby's domain XML, made from its primary's (libxml2).
 *
 * The standby is the same appliance with the same configuration: same
 * image, kernel command line, memory, vCPUs and service IPs. What differs is
 * what must differ for two copies to coexist: the name (and so the id the
 * guest reports telemetry under), no UUID (libvirt makes one), its own MAC
 * (the primary's would clash on the segment), the bridge of the host it
 * lands on, the role, a management address (a standby has no service IP to
 * reach Redis or be reached by), the region's gateway, and the console log
 * path, which names the domain. The metadata element is replaced whole.
 *
 * Pure (no libvirt, no I/O): tests/unit/test_ctl_xml.c runs it on a real
 * template.
 */
#include "controller/ctl_xml.h"
#include "common/util.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xmlNodePtr
ctl_xml_child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

/* The document as a malloc'd string (libxml2 allocates its own). */
static char *
ctl_xml_dump(xmlDocPtr doc, char *err, size_t errlen)
{
	xmlChar *dump = NULL;
	char *out = NULL;
	int len = 0;

	xmlDocDumpMemory(doc, &dump, &len);
	if (!dump || !(out = malloc((size_t)len + 1)))
		snprintf(err, errlen, "out of memory");
	else {
		memcpy(out, dump, (size_t)len);
		out[len] = '\0';
	}
	xmlFree(dump);
	return out;
}

/* The kernel command line with our keys replaced (others kept in order). */
static void
ctl_xml_cmdline(xmlNodePtr cmd, const struct ctl_standby_spec *s)
{
	static const char *const ours[] = { "pf.vm=", "pf.role=", "pf.mgmt=", "pf.gw=" };
	xmlChar *old = xmlNodeGetContent(cmd);
	char out[2048], *save = NULL, *w;
	size_t off = 0;

	out[0] = '\0';
	for (w = old ? strtok_r((char *)old, " \t\n", &save) : NULL; w;
	    w = strtok_r(NULL, " \t\n", &save)) {
		int drop = 0;

		for (size_t i = 0; i < PF_ARRAY_LEN(ours); i++)
			if (strncmp(w, ours[i], strlen(ours[i])) == 0 &&
			    (i != 3 || s->gateway[0]))
				drop = 1;
		if (!drop && off < sizeof(out))
			off += (size_t)snprintf(out + off, sizeof(out) - off, "%s%s", off ? " " : "", w);
	}
	if (off < sizeof(out))
		off += (size_t)snprintf(out + off, sizeof(out) - off, "%spf.vm=%s pf.role=%s",
		    off ? " " : "", s->meta.id, s->meta.role == ROLE_STANDBY ? "standby" : "primary");
	if (s->meta.mgmt[0] && off < sizeof(out))
		off += (size_t)snprintf(out + off, sizeof(out) - off, " pf.mgmt=%s", s->meta.mgmt);
	if (s->gateway[0] && off < sizeof(out))
		snprintf(out + off, sizeof(out) - off, " pf.gw=%s", s->gateway);
	xmlNodeSetContent(cmd, (const xmlChar *)out);
	xmlFree(old);
}

/* Replace the first occurrence of from in the attribute's value by to. */
static void
ctl_xml_attr_subst(xmlNodePtr n, const char *attr, const char *from, const char *to)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)attr);
	const char *p;
	char out[512];

	if (v && (p = strstr((const char *)v, from))) {
		snprintf(out, sizeof(out), "%.*s%s%s", (int)(p - (const char *)v), (const char *)v,
		    to, p + strlen(from));
		xmlSetProp(n, (const xmlChar *)attr, (const xmlChar *)out);
	}
	xmlFree(v);
}

/* Put the standby's metadata element in place of the primary's. */
static int
ctl_xml_meta(xmlDocPtr doc, xmlNodePtr dom, const struct ctl_vm_meta *m)
{
	xmlNodePtr md = ctl_xml_child(dom, "metadata"), c, next, copy;
	char text[2048];
	xmlDocPtr frag;

	if (ctl_vm_meta_format(m, 1, text, sizeof(text)) < 0)
		return -1;
	if (!md)
		md = xmlNewChild(dom, NULL, (const xmlChar *)"metadata", NULL);
	for (c = md->children; c; c = next) {
		next = c->next;
		if (c->type == XML_ELEMENT_NODE && c->ns && c->ns->href &&
		    strcmp((const char *)c->ns->href, CTL_META_NS) == 0) {
			xmlUnlinkNode(c);
			xmlFreeNode(c);
		}
	}
	frag = xmlReadMemory(text, (int)strlen(text), NULL, NULL, XML_PARSE_NONET);
	if (!frag)
		return -1;
	copy = xmlDocCopyNode(xmlDocGetRootElement(frag), doc, 1);
	xmlFreeDoc(frag);
	if (!copy)
		return -1;
	xmlAddChild(md, copy);
	return 0;
}

char *
ctl_xml_standby(const char *xml, const struct ctl_standby_spec *s, char *err, size_t errlen)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL, XML_PARSE_NONET);
	xmlNodePtr dom, n, os, devs;
	xmlChar *oldname = NULL;
	char *out = NULL;

	if (!doc || !(dom = xmlDocGetRootElement(doc)) ||
	    strcmp((const char *)dom->name, "domain") != 0) {
		snprintf(err, errlen, "primary's XML is not a <domain>");
		goto out;
	}
	if (!(n = ctl_xml_child(dom, "name"))) {
		snprintf(err, errlen, "primary's XML has no <name>");
		goto out;
	}
	if (!(oldname = xmlNodeGetContent(n))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	xmlNodeSetContent(n, (const xmlChar *)s->meta.id);
	if ((n = ctl_xml_child(dom, "uuid"))) {
		xmlUnlinkNode(n);
		xmlFreeNode(n);
	}
	os = ctl_xml_child(dom, "os");
	if (!(n = ctl_xml_child(os, "cmdline"))) {
		snprintf(err, errlen, "primary's XML has no <os><cmdline> (the appliance's identity)");
		goto out;
	}
	ctl_xml_cmdline(n, s);
	devs = ctl_xml_child(dom, "devices");
	if (!(n = ctl_xml_child(devs, "interface"))) {
		snprintf(err, errlen, "primary's XML has no <interface>");
		goto out;
	}
	if (s->bridge[0] && ctl_xml_child(n, "source"))
		xmlSetProp(ctl_xml_child(n, "source"), (const xmlChar *)"bridge",
		    (const xmlChar *)s->bridge);
	/* libvirt names the tap itself; a <target dev> would clash. */
	if (ctl_xml_child(n, "target")) {
		xmlNodePtr t = ctl_xml_child(n, "target");

		xmlUnlinkNode(t);
		xmlFreeNode(t);
	}
	if (!ctl_xml_child(n, "mac"))
		xmlNewChild(n, NULL, (const xmlChar *)"mac", NULL);
	xmlSetProp(ctl_xml_child(n, "mac"), (const xmlChar *)"address", (const xmlChar *)s->mac);
	for (n = devs ? devs->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && (strcmp((const char *)n->name, "serial") == 0 ||
		    strcmp((const char *)n->name, "console") == 0) && ctl_xml_child(n, "source"))
			ctl_xml_attr_subst(ctl_xml_child(n, "source"), "path",
			    (const char *)oldname, s->meta.id);
	if (ctl_xml_meta(doc, dom, &s->meta) < 0) {
		snprintf(err, errlen, "cannot write the standby's metadata");
		goto out;
	}
	out = ctl_xml_dump(doc, err, errlen);
out:
	xmlFree(oldname);
	xmlFreeDoc(doc);
	return out;
}

char *
ctl_xml_role(const char *xml, int standby, char *err, size_t errlen)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL, XML_PARSE_NONET);
	xmlNodePtr dom, cmd;
	xmlChar *old = NULL;
	const char *want = standby ? "pf.role=standby" : "pf.role=primary";
	char line[2048], *out = NULL, *save = NULL, *w;
	size_t off = 0;

	err[0] = '\0';
	if (!doc || !(dom = xmlDocGetRootElement(doc)) ||
	    !(cmd = ctl_xml_child(ctl_xml_child(dom, "os"), "cmdline"))) {
		snprintf(err, errlen, "the definition has no <os><cmdline>");
		goto out;
	}
	if (!(old = xmlNodeGetContent(cmd))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (strstr((const char *)old, want))
		goto out;	/* already so: nothing to define */
	line[0] = '\0';
	for (w = strtok_r((char *)old, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
		if (strncmp(w, "pf.role=", 8) != 0 && off < sizeof(line))
			off += (size_t)snprintf(line + off, sizeof(line) - off, "%s ", w);
	if (off < sizeof(line))
		snprintf(line + off, sizeof(line) - off, "%s", want);
	xmlNodeSetContent(cmd, (const xmlChar *)line);
	out = ctl_xml_dump(doc, err, errlen);
out:
	xmlFree(old);
	xmlFreeDoc(doc);
	return out;
}

void
ctl_xml_init(void)
{
	xmlInitParser();
}

void
ctl_xml_fini(void)
{
	xmlCleanupParser();
}
