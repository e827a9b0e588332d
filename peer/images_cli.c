/*
 * `mallee admin image ...`: import files as a public image, pull one onto
 * this peer (a diagnostic), list what the cloud holds. The peer does the
 * work as a job; this side starts it and asks until it is done.
 */
#include "images_int.h"

#include "cli.h"
#include "config.h"
#include "mem.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS 100

static void image_usage(FILE *out)
{
	fprintf(out,
	        "usage: mallee admin [--data-dir DIR] image COMMAND ...\n\n"
	        "  image import --name NAME [--kernel FILE] [--ramdisk FILE]\n"
	        "        [--disk FILE [--disk-format raw|qcow2]] [--cmdline "
	        "ARGS]\n"
	        "        [--description TEXT] [--arch x86_64]\n"
	        "                             a public image every account "
	        "can run;\n"
	        "                             prints its ami id\n"
	        "  image pull AMI             fetch an image onto this peer "
	        "(diagnostic)\n"
	        "  image list [--json]        the images' content and who "
	        "holds it\n");
}

/* True when the first word after the options is "image". */
bool cli_admin_image_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--data-dir") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		return strcmp(argv[i], "image") == 0;
	}
	return false;
}

/* Starts a job; waits for it, then fills *out (caller frees). */
static int start_job(const char *dir, struct mc_buf *req, struct mc_doc **out)
{
	struct mc_doc *doc = NULL;
	int r = ctl_request("admin image", dir, req, &doc);
	if (r)
		return r;
	struct ctl_poll poll = {.what = "image-job",
	                        .key = "job",
	                        .interval_ms = POLL_MS,
	                        .label = "the image job"};
	mc_get_uint(mc_doc_root(doc), "job", &poll.id);
	mc_doc_free(doc);
	return ctl_poll("admin image", dir, &poll, out);
}

/* An absolute path for the peer, which runs elsewhere in the tree. */
static int absolute(const char *flag, const char *path, char *out)
{
	if (!realpath(path, out)) {
		fprintf(stderr, "mallee admin image: %s %s: %s\n", flag, path,
		        strerror(errno));
		return 1;
	}
	if (access(out, R_OK) != 0) {
		fprintf(stderr, "mallee admin image: %s %s: %s\n", flag, path,
		        strerror(errno));
		return 1;
	}
	return 0;
}

struct import_args {
	const char *name, *description, *arch, *cmdline, *format;
	const char *file[IMAGES_PARTS];
};

static int image_import(const char *dir, const struct import_args *a)
{
	static const char *const flags[IMAGES_PARTS] = {"--kernel", "--ramdisk",
	                                                "--disk"};
	char path[IMAGES_PARTS][PATH_MAX];
	if (!a->name)
		return usage_error("admin", "image import needs --name NAME");
	if (!a->file[IMAGES_KERNEL] && !a->file[IMAGES_DISK])
		return usage_error("admin", "image import needs --kernel FILE "
		                            "or --disk FILE (or both)");
	if (a->format && !a->file[IMAGES_DISK])
		return usage_error("admin", "--disk-format needs --disk");
	if (a->format && strcmp(a->format, "raw") != 0 &&
	    strcmp(a->format, "qcow2") != 0)
		return usage_error("admin", "--disk-format: raw or qcow2");
	unsigned n = 2;
	for (int i = 0; i < IMAGES_PARTS; i++) {
		if (!a->file[i])
			continue;
		if (absolute(flags[i], a->file[i], path[i]))
			return 1;
		n++;
	}
	n += (a->description != NULL) + (a->arch != NULL) +
	     (a->cmdline != NULL) + (a->format != NULL);
	struct mc_buf req;
	mc_buf_init(&req);
	mc_pack_map(&req, n);
	mc_pack_kv_str(&req, "cmd", "image-import");
	mc_pack_kv_str(&req, "name", a->name);
	for (int i = 0; i < IMAGES_PARTS; i++)
		if (a->file[i])
			mc_pack_kv_str(&req, images_part_key[i], path[i]);
	if (a->description)
		mc_pack_kv_str(&req, "description", a->description);
	if (a->arch)
		mc_pack_kv_str(&req, "arch", a->arch);
	if (a->cmdline)
		mc_pack_kv_str(&req, "cmdline", a->cmdline);
	if (a->format)
		mc_pack_kv_str(&req, "disk_format", a->format);
	struct mc_doc *doc = NULL;
	int r = start_job(dir, &req, &doc);
	mc_buf_free(&req);
	if (r)
		return r;
	char ami[32];
	printf("%s\n", str_or(mc_doc_root(doc), "ami", ami, sizeof(ami), "?"));
	mc_doc_free(doc);
	return 0;
}

static int image_pull(const char *dir, const char *ami)
{
	struct mc_buf req;
	mc_buf_init(&req);
	mc_pack_map(&req, 2);
	mc_pack_kv_str(&req, "cmd", "image-pull");
	mc_pack_kv_str(&req, "ami", ami);
	struct mc_doc *doc = NULL;
	int r = start_job(dir, &req, &doc);
	mc_buf_free(&req);
	if (r)
		return r;
	uint64_t bytes = 0, ms = 0;
	mc_get_uint(mc_doc_root(doc), "bytes", &bytes);
	mc_get_uint(mc_doc_root(doc), "ms", &ms);
	printf("%s: %llu bytes pulled in %.3f s\n", ami,
	       (unsigned long long)bytes, (double)ms / 1000.0);
	mc_doc_free(doc);
	return 0;
}

static int image_list(const char *dir, bool json)
{
	struct mc_doc *doc = NULL;
	int r = ctl_command("admin image", dir, "image-list", &doc);
	if (r)
		return r;
	const struct mc_val *list = mc_map_get(mc_doc_root(doc), "images");
	if (json) {
		print_json(list);
	} else {
		printf("%-21s  %-24s  %12s  %-6s  %-4s  %s\n", "IMAGE", "NAME",
		       "BYTES", "DISK", "HERE", "HOLDERS");
		for (uint32_t i = 0;
		     list && list->type == MC_VAL_ARRAY && i < list->v.array.n;
		     i++) {
			const struct mc_val *it = &list->v.array.items[i];
			char ami[32], name[129], fmt[8];
			uint64_t size = 0, holders = 0;
			bool here = false;
			mc_get_uint(it, "size", &size);
			mc_get_uint(it, "holders", &holders);
			mc_get_bool(it, "here", &here);
			printf("%-21s  %-24s  %12llu  %-6s  %-4s  %llu\n",
			       str_or(it, "ami", ami, sizeof(ami), "?"),
			       str_or(it, "name", name, sizeof(name), "-"),
			       (unsigned long long)size,
			       str_or(it, "disk_format", fmt, sizeof(fmt), "-"),
			       here ? "yes" : "no",
			       (unsigned long long)holders);
		}
	}
	mc_doc_free(doc);
	return 0;
}

int cli_admin_image(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"name", required_argument, NULL, 'n'},
	    {"kernel", required_argument, NULL, 'k'},
	    {"ramdisk", required_argument, NULL, 'r'},
	    {"disk", required_argument, NULL, 'D'},
	    {"disk-format", required_argument, NULL, 'f'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"description", required_argument, NULL, 'e'},
	    {"arch", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = PEER_DEFAULT_DATA_DIR;
	struct import_args a;
	bool json = false;
	int c;
	memset(&a, 0, sizeof(a));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			a.name = optarg;
			break;
		case 'k':
			a.file[IMAGES_KERNEL] = optarg;
			break;
		case 'r':
			a.file[IMAGES_RAMDISK] = optarg;
			break;
		case 'D':
			a.file[IMAGES_DISK] = optarg;
			break;
		case 'f':
			a.format = optarg;
			break;
		case 'c':
			a.cmdline = optarg;
			break;
		case 'e':
			a.description = optarg;
			break;
		case 'a':
			a.arch = optarg;
			break;
		case 'h':
			image_usage(stdout);
			return 0;
		default:
			return bad_flag("admin", argc, argv);
		}
	}
	/* argv[optind] is "image". */
	int left = argc - optind - 1;
	char **args = argv + optind + 1;
	const char *op = left > 0 ? args[0] : "";
	if (strcmp(op, "import") == 0 && left == 1)
		return image_import(dir, &a);
	if (strcmp(op, "pull") == 0 && left == 2)
		return image_pull(dir, args[1]);
	if (strcmp(op, "list") == 0 && left == 1)
		return image_list(dir, json);
	if (left == 0) {
		image_usage(stderr);
		return 2;
	}
	return usage_error("admin", "unknown image command (import, pull, "
	                            "list)");
}
