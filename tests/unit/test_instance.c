/* The instance record codec both edges and hosts use (common/instance). */
#include "check.h"

#include "buf.h"
#include "instance.h"
#include "wire.h"

#include <errno.h>
#include <string.h>

static void fill(struct mc_instance *in)
{
	memset(in, 0, sizeof(*in));
	strcpy(in->id, "i-0123456789abcdef0");
	strcpy(in->account, "123456789012");
	strcpy(in->reservation, "r-0123456789abcdef0");
	in->launch_index = 2;
	strcpy(in->image_id, "ami-0123456789abcdef0");
	strcpy(in->instance_type, "t2.nano");
	in->vcpu = 1;
	in->mem_mib = 512;
	strcpy(in->zone, "mallee-a");
	strcpy(in->key_name, "k1");
	in->key_material = strdup("ssh-ed25519 AAAA k1");
	in->n_groups = 2;
	strcpy(in->groups[0].id, "sg-1");
	strcpy(in->groups[0].name, "default");
	strcpy(in->groups[1].id, "sg-2");
	strcpy(in->groups[1].name, "web");
	in->user_data = (uint8_t *)strdup("#!/bin/sh\necho hi\n");
	in->user_data_len = strlen((char *)in->user_data);
	in->imds_tokens_required = true;
	strcpy(in->host, "00112233445566aa");
	strcpy(in->private_ip, "172.31.4.7");
	in->state = MC_INST_STOPPED;
	strcpy(in->state_reason_code, "Client.UserInitiatedShutdown");
	in->launch_ms = 1700000000123ull;
	in->boots = 3;
}

static void test_round_trip(void)
{
	struct mc_instance a, b;
	fill(&a);
	struct mc_buf buf;
	mc_buf_init(&buf);
	mc_instance_pack(&a, &buf);
	CHECK(mc_instance_unpack(buf.data, buf.len, &b) == 0);
	CHECK_STR(b.id, a.id);
	CHECK_STR(b.account, a.account);
	CHECK_STR(b.instance_type, "t2.nano");
	CHECK_EQ_U64(b.mem_mib, 512);
	CHECK_EQ_U64(b.launch_index, 2);
	CHECK_EQ_U64(b.launch_ms, a.launch_ms);
	CHECK_EQ_U64(b.boots, 3);
	CHECK(b.state == MC_INST_STOPPED);
	CHECK(b.imds_tokens_required);
	CHECK_STR(b.key_material, a.key_material);
	CHECK_EQ_U64(b.user_data_len, a.user_data_len);
	CHECK(memcmp(b.user_data, a.user_data, a.user_data_len) == 0);
	CHECK_EQ_U64(b.n_groups, 2);
	CHECK_STR(b.groups[1].name, "web");
	CHECK_STR(b.state_reason_code, "Client.UserInitiatedShutdown");

	struct mc_instance c;
	mc_instance_copy(&c, &b);
	CHECK(c.key_material != b.key_material);
	CHECK_STR(c.key_material, b.key_material);
	char rid[48];
	mc_instance_record_id(&c, rid, sizeof(rid));
	CHECK_STR(rid, "123456789012:i-0123456789abcdef0");

	/* Every truncation is refused, never a crash. */
	for (size_t n = 0; n < buf.len; n++) {
		struct mc_instance t;
		CHECK(mc_instance_unpack(buf.data, n, &t) == -EINVAL);
	}
	mc_instance_clear(&a);
	mc_instance_clear(&b);
	mc_instance_clear(&c);
	mc_buf_free(&buf);
}

static void test_refuses(void)
{
	struct mc_buf b;
	struct mc_instance out;
	mc_buf_init(&b);
	/* Not a map. */
	mc_pack_str(&b, "i-1");
	CHECK(mc_instance_unpack(b.data, b.len, &out) == -EINVAL);
	/* No id. */
	mc_buf_reset(&b);
	mc_pack_map(&b, 1);
	mc_pack_kv_str(&b, "account", "123456789012");
	CHECK(mc_instance_unpack(b.data, b.len, &out) == -EINVAL);
	/* A string that does not fit its field. */
	mc_buf_reset(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "id", "i-1");
	mc_pack_kv_str(&b, "account", "1234567890123456");
	CHECK(mc_instance_unpack(b.data, b.len, &out) == -EINVAL);
	/* A number too large for its field. */
	mc_buf_reset(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "id", "i-1");
	mc_pack_kv_uint(&b, "vcpu", 1ull << 40);
	CHECK(mc_instance_unpack(b.data, b.len, &out) == -EINVAL);
	/* Unknown keys are skipped (newer writers). */
	mc_buf_reset(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "id", "i-1");
	mc_pack_kv_str(&b, "from_the_future", "x");
	CHECK(mc_instance_unpack(b.data, b.len, &out) == 0);
	CHECK_STR(out.id, "i-1");
	mc_instance_clear(&out);
	mc_buf_free(&b);
}

static void test_states(void)
{
	enum mc_instance_state s;
	CHECK_STR(mc_instance_state_name(MC_INST_SHUTTING_DOWN),
	          "shutting-down");
	CHECK(mc_instance_state_parse("stopping", &s) == 0 &&
	      s == MC_INST_STOPPING);
	CHECK(mc_instance_state_parse("gone", &s) == -EINVAL);
	CHECK(mc_instance_holds_capacity(MC_INST_RUNNING));
	CHECK(!mc_instance_holds_capacity(MC_INST_STOPPED));
	CHECK(!mc_instance_holds_capacity(MC_INST_TERMINATED));
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_refuses);
	RUN(test_states);
	return check_summary();
}
