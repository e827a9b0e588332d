/*
 * The instance record: what the cloud knows of one instance, as the host
 * that runs it writes it (record kind "instance", id "ACCOUNT:i-...") and
 * every edge reads it. One codec here, used by both sides, so the two
 * cannot drift apart. Unknown keys are skipped when decoding, so versions
 * can mix; a missing key leaves the field zero/empty.
 */
#ifndef MC_INSTANCE_H
#define MC_INSTANCE_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_INSTANCE_KIND      "instance"
#define MC_INSTANCE_ID_LEN    19 /* "i-" + 17 hex */
#define MC_INSTANCE_GROUPS    16
#define MC_INSTANCE_USER_DATA (16 * 1024) /* EC2's limit, decoded bytes */
#define MC_INSTANCE_KEY_MAX   16384       /* an OpenSSH public key line */

/* EC2's state codes. */
enum mc_instance_state {
	MC_INST_PENDING = 0,
	MC_INST_RUNNING = 16,
	MC_INST_SHUTTING_DOWN = 32,
	MC_INST_TERMINATED = 48,
	MC_INST_STOPPING = 64,
	MC_INST_STOPPED = 80,
};

struct mc_instance_group {
	char id[32]; /* sg-... */
	char name[256];
};

struct mc_instance {
	/* Identity. */
	char id[MC_INSTANCE_ID_LEN + 1];
	char account[13];
	char reservation[32]; /* r-... */
	unsigned launch_index;
	char client_token[65];
	char requester[256]; /* the caller's ARN, for logs */

	/* What was asked for. */
	char image_id[32]; /* ami-... */
	char instance_type[32];
	uint32_t vcpu;
	uint64_t mem_mib;
	uint64_t disk_mib; /* root disk size; 0: the image's */
	char zone[64];     /* asked for, or "" (the host's then) */
	char key_name[256];
	char *key_material; /* OpenSSH public key line, or NULL; owned */
	struct mc_instance_group groups[MC_INSTANCE_GROUPS];
	size_t n_groups;
	uint8_t *user_data; /* decoded bytes, or NULL; owned */
	size_t user_data_len;
	bool imds_tokens_required; /* HttpTokens=required */

	/* Where and how it runs (the host fills these). */
	char host[17];         /* peer id of the host */
	char private_ip[16];   /* dotted quad, "" until assigned */
	char mac[18];          /* "02:xx:..." */
	char architecture[16]; /* "x86_64" */
	char root_device[32];  /* "/dev/vda" */
	enum mc_instance_state state;
	char state_reason_code[64]; /* EC2's stateReason code, or "" */
	char state_reason[256];     /* its message: the real cause */
	char transition_reason[256];
	uint64_t launch_ms;  /* launch time (ms since the epoch) */
	uint64_t updated_ms; /* last state change */
	uint32_t boots;      /* starts so far (a restart counts) */
};

/* EC2's name of a state ("pending", ...), or "unknown". */
const char *mc_instance_state_name(enum mc_instance_state s);
/* Parses a name back; -EINVAL for an unknown one. */
int mc_instance_state_parse(const char *name, enum mc_instance_state *out);
/* True for pending/running/stopping/shutting-down: capacity is held. */
bool mc_instance_holds_capacity(enum mc_instance_state s);

/* Appends the record body (a msgpack map). */
void mc_instance_pack(const struct mc_instance *in, struct mc_buf *out);
/*
 * Decodes a record body into *out (zeroed first; free with
 * mc_instance_clear). Returns 0 or -EINVAL for bytes that are not an
 * instance record (a missing or malformed id, a field that does not fit).
 */
int mc_instance_unpack(const void *body, size_t len, struct mc_instance *out);
/* Frees what *in owns and zeroes it. */
void mc_instance_clear(struct mc_instance *in);
/* A deep copy (dst is overwritten, not freed first). */
void mc_instance_copy(struct mc_instance *dst, const struct mc_instance *src);
/* The record id "ACCOUNT:i-..." into out (at least 48 bytes). */
void mc_instance_record_id(const struct mc_instance *in, char *out,
                           size_t size);

#endif
