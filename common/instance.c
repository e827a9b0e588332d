#include "instance.h"

#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	enum mc_instance_state state;
	const char *name;
} state_names[] = {
    {MC_INST_PENDING, "pending"},
    {MC_INST_RUNNING, "running"},
    {MC_INST_SHUTTING_DOWN, "shutting-down"},
    {MC_INST_TERMINATED, "terminated"},
    {MC_INST_STOPPING, "stopping"},
    {MC_INST_STOPPED, "stopped"},
};

#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

const char *mc_instance_state_name(enum mc_instance_state s)
{
	for (size_t i = 0; i < N_STATES; i++)
		if (state_names[i].state == s)
			return state_names[i].name;
	return "unknown";
}

int mc_instance_state_parse(const char *name, enum mc_instance_state *out)
{
	for (size_t i = 0; i < N_STATES; i++)
		if (strcmp(state_names[i].name, name) == 0) {
			*out = state_names[i].state;
			return 0;
		}
	return -EINVAL;
}

bool mc_instance_holds_capacity(enum mc_instance_state s)
{
	return s == MC_INST_PENDING || s == MC_INST_RUNNING ||
	       s == MC_INST_STOPPING || s == MC_INST_SHUTTING_DOWN;
}

/* Every string field, by key, so pack and unpack walk one list. */
#define STR_FIELDS(X)                                                          \
	X(id)                                                                  \
	X(account)                                                             \
	X(reservation)                                                         \
	X(client_token)                                                        \
	X(requester)                                                           \
	X(image_id)                                                            \
	X(instance_type)                                                       \
	X(zone)                                                                \
	X(key_name)                                                            \
	X(host)                                                                \
	X(private_ip)                                                          \
	X(mac)                                                                 \
	X(architecture)                                                        \
	X(root_device)                                                         \
	X(state_reason_code)                                                   \
	X(state_reason)                                                        \
	X(transition_reason)

#define UINT_FIELDS(X)                                                         \
	X(launch_index)                                                        \
	X(vcpu)                                                                \
	X(mem_mib)                                                             \
	X(disk_mib)                                                            \
	X(launch_ms)                                                           \
	X(updated_ms)                                                          \
	X(boots)

#define COUNT(f) +1

void mc_instance_pack(const struct mc_instance *in, struct mc_buf *out)
{
	uint32_t n = 0 STR_FIELDS(COUNT) UINT_FIELDS(COUNT) + 5;
	mc_pack_map(out, n);
#define PACK_STR(f)  mc_pack_kv_str(out, #f, in->f);
#define PACK_UINT(f) mc_pack_kv_uint(out, #f, (uint64_t)in->f);
	STR_FIELDS(PACK_STR)
	UINT_FIELDS(PACK_UINT)
	mc_pack_kv_uint(out, "state", (uint64_t)in->state);
	mc_pack_kv_bool(out, "imds_tokens_required", in->imds_tokens_required);
	mc_pack_kv_str(out, "key_material",
	               in->key_material ? in->key_material : "");
	static const uint8_t none;
	mc_pack_kv_bin(out, "user_data", in->user_data ? in->user_data : &none,
	               in->user_data_len);
	mc_pack_str(out, "groups");
	mc_pack_array(out, (uint32_t)in->n_groups);
	for (size_t i = 0; i < in->n_groups; i++) {
		mc_pack_map(out, 2);
		mc_pack_kv_str(out, "id", in->groups[i].id);
		mc_pack_kv_str(out, "name", in->groups[i].name);
	}
}

/* A string field: absent is fine, present must be a string that fits. */
static bool get_str(const struct mc_val *m, const char *key, char *out,
                    size_t size)
{
	const struct mc_val *v = mc_map_get(m, key);
	if (!v)
		return true;
	return mc_get_str(m, key, out, size);
}

static bool get_uint(const struct mc_val *m, const char *key, uint64_t max,
                     uint64_t *out)
{
	const struct mc_val *v = mc_map_get(m, key);
	if (!v)
		return true;
	return mc_get_uint(m, key, out) && *out <= max;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
	char *s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static bool get_groups(const struct mc_val *m, struct mc_instance *out)
{
	const struct mc_val *a = mc_map_get(m, "groups");
	if (!a)
		return true;
	if (a->type != MC_VAL_ARRAY || a->v.array.n > MC_INSTANCE_GROUPS)
		return false;
	for (uint32_t i = 0; i < a->v.array.n; i++) {
		const struct mc_val *g = &a->v.array.items[i];
		if (!mc_get_str(g, "id", out->groups[i].id,
		                sizeof(out->groups[i].id)) ||
		    !get_str(g, "name", out->groups[i].name,
		             sizeof(out->groups[i].name)))
			return false;
	}
	out->n_groups = a->v.array.n;
	return true;
}

int mc_instance_unpack(const void *body, size_t len, struct mc_instance *out)
{
	memset(out, 0, sizeof(*out));
	struct mc_doc *doc = mc_unpack(body, len);
	if (!doc)
		return -EINVAL;
	const struct mc_val *m = mc_doc_root(doc);
	bool ok = m->type == MC_VAL_MAP;
#define GET_STR(f) ok = ok && get_str(m, #f, out->f, sizeof(out->f));
	STR_FIELDS(GET_STR)
	uint64_t u = 0;
#define GET_UINT(f)                                                            \
	u = 0;                                                                 \
	ok = ok && get_uint(m, #f, UINT64_MAX, &u);                            \
	out->f = (__typeof__(out->f))u;                                        \
	ok = ok && (uint64_t)out->f == u;
	UINT_FIELDS(GET_UINT)
	u = 0;
	ok = ok && get_uint(m, "state", 255, &u);
	out->state = (enum mc_instance_state)u;
	if (ok && mc_map_get(m, "imds_tokens_required"))
		ok = mc_get_bool(m, "imds_tokens_required",
		                 &out->imds_tokens_required);
	const uint8_t *p;
	size_t n;
	if (ok && mc_get_bytes(m, "key_material", &p, &n) && n > 0) {
		ok = n <= MC_INSTANCE_KEY_MAX && !memchr(p, 0, n);
		if (ok)
			out->key_material = dup_bytes(p, n);
	}
	if (ok && mc_get_bytes(m, "user_data", &p, &n) && n > 0) {
		ok = n <= MC_INSTANCE_USER_DATA;
		if (ok) {
			out->user_data = (uint8_t *)dup_bytes(p, n);
			out->user_data_len = n;
		}
	}
	ok = ok && get_groups(m, out);
	ok = ok && strncmp(out->id, "i-", 2) == 0;
	mc_doc_free(doc);
	if (!ok) {
		mc_instance_clear(out);
		return -EINVAL;
	}
	return 0;
}

void mc_instance_clear(struct mc_instance *in)
{
	free(in->key_material);
	free(in->user_data);
	memset(in, 0, sizeof(*in));
}

void mc_instance_copy(struct mc_instance *dst, const struct mc_instance *src)
{
	*dst = *src;
	dst->key_material =
	    src->key_material ? xstrdup(src->key_material) : NULL;
	dst->user_data = NULL;
	if (src->user_data) {
		dst->user_data = xmalloc(src->user_data_len + 1);
		memcpy(dst->user_data, src->user_data, src->user_data_len);
	}
}

void mc_instance_record_id(const struct mc_instance *in, char *out, size_t size)
{
	snprintf(out, size, "%s:%s", in->account, in->id);
}
