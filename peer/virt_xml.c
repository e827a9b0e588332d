/*
 * Domain XML for an instance. Every string that reaches the XML is checked
 * (well-formed UTF-8, no control characters: XML 1.0 cannot carry them) and
 * escaped, whether it came from our own records or from an API request.
 */
#include "virt.h"

#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Well-formed UTF-8 without C0 controls or DEL. */
static bool xml_text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p, n;
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return false;
		/* Overlong, surrogate and beyond-U+10FFFF forms. */
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
		    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
		}
		p += n + 1;
	}
	return true;
}

/* Appends s escaped for element text and quoted attributes alike. */
static void xml_escape(struct mc_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			mc_buf_append_str(b, "&amp;");
			break;
		case '<':
			mc_buf_append_str(b, "&lt;");
			break;
		case '>':
			mc_buf_append_str(b, "&gt;");
			break;
		case '\'':
			mc_buf_append_str(b, "&apos;");
			break;
		case '"':
			mc_buf_append_str(b, "&quot;");
			break;
		default:
			mc_buf_append(b, s, 1);
		}
	}
}

/* <tag>escaped text</tag> on a line of its own. */
static void xml_element(struct mc_buf *b, const char *indent, const char *tag,
                        const char *text)
{
	mc_buf_printf(b, "%s<%s>", indent, tag);
	xml_escape(b, text);
	mc_buf_printf(b, "</%s>\n", tag);
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > VIRT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* NULL is fine; otherwise an absolute path that XML can carry. */
static bool path_ok(const char *path)
{
	return !path || (path[0] == '/' && xml_text_ok(path));
}

/* An interface name (or none): IFNAMSIZ, no '/' and no blanks (the
 * kernel's dev_valid_name()). */
static bool ifname_ok(const char *ifname)
{
	if (!ifname)
		return true;
	size_t n = strlen(ifname);
	return n > 0 && n <= 15 && strcmp(ifname, ".") != 0 &&
	       strcmp(ifname, "..") != 0 && xml_text_ok(ifname) &&
	       !strpbrk(ifname, "/ :");
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static int spec_check(const struct virt_spec *spec)
{
	if (!spec->name || !name_ok(spec->name))
		return -EINVAL;
	if (spec->vcpus < 1 || spec->vcpus > 256)
		return -EINVAL;
	/* Under 64 MiB Debian's kernel does not boot (notes); 16 TiB is
	 * beyond any host here and keeps the arithmetic small. */
	if (spec->memory_mib < 64 || spec->memory_mib > (16u << 20))
		return -EINVAL;
	if (!spec->kernel && !spec->disk)
		return -EINVAL; /* nothing to boot */
	if ((spec->initrd || spec->cmdline) && !spec->kernel)
		return -EINVAL;
	if (!path_ok(spec->kernel) || !path_ok(spec->initrd) ||
	    !path_ok(spec->disk) || !path_ok(spec->console_log))
		return -EINVAL;
	if (spec->cmdline && !xml_text_ok(spec->cmdline))
		return -EINVAL;
	if (spec->disk_format && strcmp(spec->disk_format, "qcow2") != 0 &&
	    strcmp(spec->disk_format, "raw") != 0)
		return -EINVAL;
	if (!ifname_ok(spec->bridge) || !ifname_ok(spec->tap))
		return -EINVAL;
	/* A multicast MAC cannot be a NIC's address. */
	if (!all_zero(spec->mac, 6) && (spec->mac[0] & 1))
		return -EINVAL;
	return 0;
}

static void xml_os(struct mc_buf *b, const struct virt_spec *spec)
{
	mc_buf_append_str(b, "  <os>\n    <type>hvm</type>\n");
	if (spec->kernel) {
		xml_element(b, "    ", "kernel", spec->kernel);
		if (spec->initrd)
			xml_element(b, "    ", "initrd", spec->initrd);
		/* A panicking guest reboots after a second instead of
		 * hanging; on_reboot then restarts it in place. */
		const char *cmd = spec->cmdline ? spec->cmdline : "";
		mc_buf_append_str(b, "    <cmdline>");
		xml_escape(b, cmd);
		if (!strstr(cmd, "panic="))
			mc_buf_append_str(b, *cmd ? " panic=1" : "panic=1");
		mc_buf_append_str(b, "</cmdline>\n");
	} else {
		mc_buf_append_str(b, "    <boot dev='hd'/>\n");
	}
	mc_buf_append_str(b, "  </os>\n");
}

static void xml_devices(struct mc_buf *b, const struct virt_spec *spec)
{
	mc_buf_append_str(b, "  <devices>\n");
	if (spec->disk) {
		const char *fmt =
		    spec->disk_format ? spec->disk_format : "qcow2";
		mc_buf_printf(b,
		              "    <disk type='file' device='disk'>\n"
		              "      <driver name='qemu' type='%s'/>\n"
		              "      <source file='",
		              fmt);
		xml_escape(b, spec->disk);
		mc_buf_append_str(b, "'/>\n"
		                     "      <target dev='vda' bus='virtio'/>\n"
		                     "    </disk>\n");
	}
	if (spec->bridge || spec->tap) {
		mc_buf_printf(b, "    <interface type='%s'>\n",
		              spec->bridge ? "bridge" : "ethernet");
		if (!all_zero(spec->mac, 6)) {
			const uint8_t *m = spec->mac;
			mc_buf_printf(b,
			              "      <mac address='%02x:%02x:%02x:"
			              "%02x:%02x:%02x'/>\n",
			              m[0], m[1], m[2], m[3], m[4], m[5]);
		}
		if (spec->bridge) {
			mc_buf_append_str(b, "      <source bridge='");
			xml_escape(b, spec->bridge);
			if (spec->tap) {
				mc_buf_append_str(b, "'/>\n"
				                     "      <target dev='");
				xml_escape(b, spec->tap);
			}
		} else {
			mc_buf_append_str(b, "      <target dev='");
			xml_escape(b, spec->tap);
			mc_buf_append_str(b, "' managed='no");
		}
		mc_buf_append_str(b, "'/>\n"
		                     "      <model type='virtio'/>\n"
		                     "    </interface>\n");
	}
	if (spec->console_log) {
		/* The serial port and the console are one device written to
		 * one file; append keeps earlier boots' output. */
		mc_buf_append_str(b, "    <serial type='file'>\n"
		                     "      <source path='");
		xml_escape(b, spec->console_log);
		mc_buf_append_str(b, "' append='on'/>\n"
		                     "      <target port='0'/>\n"
		                     "    </serial>\n"
		                     "    <console type='file'>\n"
		                     "      <source path='");
		xml_escape(b, spec->console_log);
		mc_buf_append_str(b, "' append='on'/>\n"
		                     "      <target type='serial' port='0'/>\n"
		                     "    </console>\n");
	}
	/* Entropy for cloud-init and sshd's keys; no balloon to save work. */
	mc_buf_append_str(b, "    <rng model='virtio'>\n"
	                     "      <backend model='random'>/dev/urandom"
	                     "</backend>\n"
	                     "    </rng>\n"
	                     "    <memballoon model='none'/>\n"
	                     "  </devices>\n");
}

int virt_domain_xml(const struct virt_spec *spec, enum virt_type type,
                    char **xml)
{
	int err = spec_check(spec);
	if (err < 0)
		return err;
	if (type != VIRT_TYPE_KVM && type != VIRT_TYPE_QEMU)
		return -EINVAL;

	struct mc_buf b;
	mc_buf_init(&b);
	mc_buf_printf(&b, "<domain type='%s'>\n",
	              type == VIRT_TYPE_KVM ? "kvm" : "qemu");
	xml_element(&b, "  ", "name", spec->name);
	if (!all_zero(spec->uuid, 16)) {
		const uint8_t *u = spec->uuid;
		mc_buf_printf(&b,
		              "  <uuid>%02x%02x%02x%02x-%02x%02x-%02x%02x-"
		              "%02x%02x-%02x%02x%02x%02x%02x%02x</uuid>\n",
		              u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
		              u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		              u[15]);
	}
	mc_buf_printf(&b,
	              "  <memory unit='MiB'>%u</memory>\n"
	              "  <vcpu>%u</vcpu>\n",
	              spec->memory_mib, spec->vcpus);
	xml_os(&b, spec);
	/* ACPI so that virt_shutdown()'s power button reaches the guest.
	 * Under TCG a smaller translation cache lowers QEMU's memory by
	 * ~100 MB per guest (notes/test-environment.md). */
	mc_buf_append_str(&b, "  <features>\n    <acpi/>\n    <apic/>\n");
	if (type == VIRT_TYPE_QEMU)
		mc_buf_append_str(&b,
		                  "    <tcg>\n"
		                  "      <tb-cache unit='MiB'>32</tb-cache>\n"
		                  "    </tcg>\n");
	mc_buf_append_str(&b, "  </features>\n"
	                      "  <clock offset='utc'/>\n"
	                      "  <on_poweroff>destroy</on_poweroff>\n"
	                      "  <on_reboot>restart</on_reboot>\n"
	                      "  <on_crash>destroy</on_crash>\n");
	xml_devices(&b, spec);
	mc_buf_append_str(&b, "</domain>\n");
	*xml = mc_buf_strdup(&b);
	mc_buf_free(&b);
	return 0;
}
