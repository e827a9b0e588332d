/*
 * The parts of a score that depend on one host or one pair: the keys the
 * strings hash to, the weight, and the uniform variate of a pair.
 */
#include "placement_int.h"

#include "crypto.h"

uint64_t plc_key(const char *s)
{
	uint8_t digest[16];
	mc_hash(digest, sizeof(digest), s, strlen(s));
	uint64_t key = 0;
	for (int i = 7; i >= 0; i--)
		key = key << 8 | digest[i];
	return key;
}

uint64_t plc_host_weight(const struct plc_host *host)
{
	uint64_t by_vcpu = (uint64_t)host->vcpu_total * PLC_WEIGHT_PER_VCPU;
	/* Split so that no memory size can overflow the product. */
	uint64_t mem = host->mem_total_mib;
	uint64_t by_mem =
	    mem / PLC_MIB_PER_VCPU * PLC_WEIGHT_PER_VCPU +
	    mem % PLC_MIB_PER_VCPU * PLC_WEIGHT_PER_VCPU / PLC_MIB_PER_VCPU;
	return by_vcpu < by_mem ? by_vcpu : by_mem;
}

double plc_unit(const char *host_id, const char *instance_id)
{
	uint64_t h =
	    plc_pair(plc_key(host_id), plc_fmix64(plc_key(instance_id)));
	return (double)plc_unit_bits(h) * 0x1p-53;
}
