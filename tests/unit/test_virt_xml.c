/*
 * The libvirt driver's pure parts: domain XML (every string escaped, bad
 * specs refused before anything reaches libvirt) and the qcow2 overlay
 * helper (qemu-img from qemu-utils).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "virt.h"

static struct virt_spec base_spec(void)
{
	struct virt_spec s = {
	    .name = "mallee-i-0123456789abcdef0",
	    .vcpus = 2,
	    .memory_mib = 256,
	    .kernel = "/var/lib/mallee/images/k/vmlinuz",
	    .initrd = "/var/lib/mallee/images/k/initrd.img",
	    .cmdline = "console=ttyS0 quiet",
	    .console_log = "/var/lib/mallee/instances/i-0/console.log",
	    .bridge = "mallee0",
	};
	return s;
}

/* Every '&' starts one of the five entities: nothing escaped twice or
 * left raw. */
static bool entities_ok(const char *xml)
{
	static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&apos;",
	                                   "&quot;"};
	for (const char *p = strchr(xml, '&'); p; p = strchr(p + 1, '&')) {
		bool ok = false;
		for (size_t i = 0; i < 5; i++)
			ok |= strncmp(p, ents[i], strlen(ents[i])) == 0;
		if (!ok)
			return false;
	}
	return true;
}

static char *xml_of(const struct virt_spec *s, enum virt_type type)
{
	char *xml = NULL;
	int err = virt_domain_xml(s, type, &xml);
	CHECK_EQ_U64((uint64_t)-err, 0);
	return xml;
}

static void test_kernel_boot(void)
{
	struct virt_spec s = base_spec();
	s.uuid[0] = 0x12;
	s.uuid[15] = 0xef;
	const uint8_t mac[6] = {0x52, 0x54, 0x00, 0xab, 0x0c, 0x01};
	memcpy(s.mac, mac, 6);
	char *xml = xml_of(&s, VIRT_TYPE_QEMU);
	if (!xml)
		return;
	CHECK(strstr(xml, "<domain type='qemu'>"));
	CHECK(strstr(xml, "<name>mallee-i-0123456789abcdef0</name>"));
	CHECK(strstr(xml, "<uuid>12000000-0000-0000-0000-0000000000ef</uuid>"));
	CHECK(strstr(xml, "<memory unit='MiB'>256</memory>"));
	CHECK(strstr(xml, "<vcpu>2</vcpu>"));
	CHECK(strstr(xml, "<kernel>/var/lib/mallee/images/k/vmlinuz</kernel>"));
	CHECK(strstr(xml, "<cmdline>console=ttyS0 quiet panic=1</cmdline>"));
	CHECK(strstr(xml, "<tb-cache unit='MiB'>32</tb-cache>"));
	CHECK(strstr(xml, "<on_crash>destroy</on_crash>"));
	CHECK(strstr(xml, "<acpi/>"));
	CHECK(strstr(xml, "<interface type='bridge'>"));
	CHECK(strstr(xml, "<source bridge='mallee0'/>"));
	CHECK(strstr(xml, "<mac address='52:54:00:ab:0c:01'/>"));
	CHECK(strstr(xml, "<model type='virtio'/>"));
	CHECK(strstr(xml, "<serial type='file'>"));
	CHECK(strstr(xml, "<console type='file'>"));
	CHECK(!strstr(xml, "<disk"));
	CHECK(!strstr(xml, "<boot dev"));
	CHECK(entities_ok(xml));
	free(xml);

	/* KVM: no TCG cache; a panic= of the image's own stays alone. */
	s.cmdline = "console=ttyS0 panic=10";
	xml = xml_of(&s, VIRT_TYPE_KVM);
	if (!xml)
		return;
	CHECK(strstr(xml, "<domain type='kvm'>"));
	CHECK(!strstr(xml, "tb-cache"));
	CHECK(strstr(xml, "<cmdline>console=ttyS0 panic=10</cmdline>"));
	free(xml);

	/* No command line at all still gets panic=1; zero uuid and MAC are
	 * left to libvirt. */
	s = base_spec();
	s.cmdline = NULL;
	xml = xml_of(&s, VIRT_TYPE_QEMU);
	if (!xml)
		return;
	CHECK(strstr(xml, "<cmdline>panic=1</cmdline>"));
	CHECK(!strstr(xml, "<uuid>"));
	CHECK(!strstr(xml, "<mac "));
	free(xml);
}

static void test_disk_and_tap(void)
{
	struct virt_spec s = base_spec();
	s.kernel = s.initrd = s.cmdline = NULL;
	s.disk = "/var/lib/mallee/instances/i-0/root.qcow2";
	s.bridge = NULL;
	s.tap = "mtap0";
	char *xml = xml_of(&s, VIRT_TYPE_QEMU);
	if (!xml)
		return;
	CHECK(strstr(xml, "<boot dev='hd'/>"));
	CHECK(strstr(xml, "<driver name='qemu' type='qcow2'/>"));
	CHECK(strstr(xml, "<source file='/var/lib/mallee/instances/i-0/"
	                  "root.qcow2'/>"));
	CHECK(strstr(xml, "<target dev='vda' bus='virtio'/>"));
	CHECK(strstr(xml, "<interface type='ethernet'>"));
	CHECK(strstr(xml, "<target dev='mtap0' managed='no'/>"));
	CHECK(!strstr(xml, "<kernel>"));
	free(xml);

	s.disk_format = "raw";
	s.tap = NULL;
	xml = xml_of(&s, VIRT_TYPE_QEMU);
	if (!xml)
		return;
	CHECK(strstr(xml, "type='raw'"));
	CHECK(!strstr(xml, "<interface"));
	free(xml);

	/* A bridge with a named tap: libvirt makes it under that name. */
	s.bridge = "mallee0";
	s.tap = "mlvac1f9002";
	xml = xml_of(&s, VIRT_TYPE_QEMU);
	if (!xml)
		return;
	CHECK(strstr(xml, "<interface type='bridge'>\n"
	                  "      <source bridge='mallee0'/>\n"
	                  "      <target dev='mlvac1f9002'/>\n"
	                  "      <model type='virtio'/>\n"));
	CHECK(!strstr(xml, "managed="));
	free(xml);
}

static void test_escaping(void)
{
	struct virt_spec s = base_spec();
	s.kernel = "/img/a&b/<k>/'q'/\"d\"";
	s.cmdline = "x=<&> y='1' z=\"2\"";
	s.console_log = "/logs/it's & <that>.log";
	s.disk = "/d/é&ü.qcow2"; /* UTF-8 passes through */
	char *xml = xml_of(&s, VIRT_TYPE_QEMU);
	if (!xml)
		return;
	CHECK(strstr(xml, "<kernel>/img/a&amp;b/&lt;k&gt;/&apos;q&apos;/"
	                  "&quot;d&quot;</kernel>"));
	CHECK(strstr(xml, "<cmdline>x=&lt;&amp;&gt; y=&apos;1&apos; "
	                  "z=&quot;2&quot; panic=1</cmdline>"));
	CHECK(strstr(xml, "<source path='/logs/it&apos;s &amp; "
	                  "&lt;that&gt;.log' append='on'/>"));
	CHECK(strstr(xml, "<source file='/d/é&amp;ü.qcow2'/>"));
	CHECK(entities_ok(xml));
	free(xml);
}

static int refused(struct virt_spec s)
{
	char *xml = NULL;
	int err = virt_domain_xml(&s, VIRT_TYPE_QEMU, &xml);
	free(xml);
	return err == -EINVAL && xml == NULL;
}

static void test_refusals(void)
{
	struct virt_spec s = base_spec();
	char long_name[VIRT_NAME_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';

	s.name = NULL;
	CHECK(refused(s));
	s.name = "";
	CHECK(refused(s));
	s.name = long_name;
	CHECK(refused(s));
	s.name = "two words";
	CHECK(refused(s));
	s.name = "a<b";
	CHECK(refused(s));
	s.name = "a/b";
	CHECK(refused(s));

	s = base_spec();
	s.vcpus = 0;
	CHECK(refused(s));
	s = base_spec();
	s.memory_mib = 32;
	CHECK(refused(s));
	s = base_spec();
	s.kernel = "relative/vmlinuz";
	CHECK(refused(s));
	s = base_spec();
	s.console_log = "console.log";
	CHECK(refused(s));
	s = base_spec();
	s.cmdline = "console=ttyS0\nroot=/dev/evil";
	CHECK(refused(s));
	s = base_spec();
	s.cmdline = "bad \xc3\x28 utf8";
	CHECK(refused(s));
	s = base_spec();
	s.kernel = "/overlong/\xc0\xaf";
	CHECK(refused(s));
	s = base_spec();
	s.kernel = "/surrogate/\xed\xa0\x80";
	CHECK(refused(s));
	s = base_spec();
	s.kernel = "/cut/\xe2\x82";
	CHECK(refused(s));
	s = base_spec();
	s.kernel = NULL; /* initrd and cmdline without a kernel */
	CHECK(refused(s));
	s.initrd = s.cmdline = NULL; /* and nothing to boot */
	CHECK(refused(s));
	s = base_spec();
	s.disk = "/d.img";
	s.disk_format = "vmdk";
	CHECK(refused(s));
	s = base_spec();
	s.tap = "mtap/0"; /* and a bridge */
	CHECK(refused(s));
	s = base_spec();
	s.bridge = "a-very-long-bridge-name";
	CHECK(refused(s));
	s.bridge = "br/0";
	CHECK(refused(s));
	s.bridge = "..";
	CHECK(refused(s));
	s = base_spec();
	s.mac[0] = 0x01; /* multicast */
	CHECK(refused(s));

	char *xml = NULL;
	s = base_spec();
	CHECK(virt_domain_xml(&s, VIRT_TYPE_AUTO, &xml) == -EINVAL);
	CHECK(xml == NULL);
}

static void test_overlay(void)
{
	char dir[] = "/tmp/mallee-virt-xml.XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	char base[128], overlay[128], missing[128], err[256];
	snprintf(base, sizeof(base), "%s/base.raw", dir);
	snprintf(overlay, sizeof(overlay), "%s/root.qcow2", dir);
	snprintf(missing, sizeof(missing), "%s/missing.raw", dir);
	int fd = open(base, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	if (fd >= 0)
		close(fd);

	CHECK_EQ_U64(
	    virt_overlay_create(base, "raw", overlay, 0, err, sizeof(err)), 0);
	/* A qcow2 file starts with "QFI\xfb" and names its backing file. */
	char head[4096] = {0};
	fd = open(overlay, O_RDONLY);
	CHECK(fd >= 0 && read(fd, head, sizeof(head) - 1) > 0);
	if (fd >= 0)
		close(fd);
	CHECK(memcmp(head, "QFI\xfb", 4) == 0);
	bool names_base = false;
	for (size_t i = 0; i + strlen(base) < sizeof(head); i++)
		names_base |= memcmp(head + i, base, strlen(base)) == 0;
	CHECK(names_base);

	/* Never over an existing file. */
	CHECK(virt_overlay_create(base, "raw", overlay, 0, err, sizeof(err)) ==
	      -EEXIST);
	unlink(overlay);
	/* A larger virtual size than the base is fine. */
	CHECK_EQ_U64(virt_overlay_create(base, "raw", overlay, 8 << 20, err,
	                                 sizeof(err)),
	             0);
	unlink(overlay);
	/* qemu-img's own complaint comes back; no file is left. */
	CHECK(virt_overlay_create(missing, "raw", overlay, 0, err,
	                          sizeof(err)) == -EIO);
	CHECK(strstr(err, "missing.raw") != NULL);
	CHECK(access(overlay, F_OK) != 0);
	CHECK(virt_overlay_create("base.raw", "raw", overlay, 0, err,
	                          sizeof(err)) == -EINVAL);
	CHECK(virt_overlay_create(base, "vmdk", overlay, 0, err, sizeof(err)) ==
	      -EINVAL);
	unlink(base);
	rmdir(dir);
}

int main(void)
{
	RUN(test_kernel_boot);
	RUN(test_disk_and_tap);
	RUN(test_escaping);
	RUN(test_refusals);
	RUN(test_overlay);
	return check_summary();
}
