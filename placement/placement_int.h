/*
 * Shared between the files of placement/ only: the prepared view and the
 * integer and floating-point kernels of a score.
 */
#ifndef PLC_PLACEMENT_INT_H
#define PLC_PLACEMENT_INT_H

#include "placement.h"

#include <float.h>
#include <stdint.h>
#include <string.h>

/*
 * Scores must come out bit-identical on every peer: no excess precision and
 * no fused multiply-adds. GCC does not contract in ISO C mode (-std=c11),
 * and CMake builds placement/ with -ffp-contract=off besides; clang honours
 * the pragma.
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error "placement needs double arithmetic without excess precision"
#endif

/* Zone index 0 is "no zone"; a request for any zone matches every index. */
#define PLC_NO_ZONE  0u
#define PLC_ANY_ZONE UINT32_MAX

/* What one decision reads of a host, packed for the scan. */
struct plc_slot {
	/* Read by the filter, for every host. */
	uint64_t mem_free;
	uint64_t disk_free;
	/* vcpu_free + 1, or 0 for a dead or weightless host: fits if > ask. */
	uint64_t vcpu_room;
	uint64_t weight; /* plc_host_weight() */
	uint32_t load;
	uint32_t zone;
	/* Read for the hosts that fit. */
	uint64_t key;  /* K(host id), see plc_unit() */
	uint32_t rank; /* position of the id in strcmp order: breaks ties */
};

/* A scored candidate, in the selection heaps. */
struct plc_entry {
	double score;
	uint32_t rank;
	uint32_t host;
};

struct plc_view {
	size_t n;
	double epsilon;
	struct plc_slot *slots;
	char **ids;     /* point into id_block */
	char *id_block; /* all ids, NUL-separated */
	char **zones;   /* interned; zones[PLC_NO_ZONE] is "" */
	size_t n_zones, zones_cap;
	/* Scratch for plc_candidates(), n entries each. */
	uint32_t *fit;
	struct plc_entry *under, *over;
};

/* The first 8 bytes of BLAKE2b(s), little-endian. */
uint64_t plc_key(const char *s);

/* Stafford's "Mix13" finaliser (the one splitmix64 uses): a bijection. */
static inline uint64_t plc_mix13(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* MurmurHash3's fmix64, another bijection, for the instance side. */
static inline uint64_t plc_fmix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

/*
 * h(host, instance), given K(host) and fmix64(K(instance)) (computed once
 * per decision). For one instance it is a bijection of the host key, so two
 * hosts never collide before the cut to 53 bits.
 */
static inline uint64_t plc_pair(uint64_t host_key, uint64_t instance_mix)
{
	return plc_mix13(host_key ^ instance_mix);
}

/* The odd 53-bit integer x with u = x / 2^53. */
static inline uint64_t plc_unit_bits(uint64_t h)
{
	return (h >> 11) | 1;
}

/*
 * -ln(x / 2^53) for an odd x < 2^53, from +, -, *, / only (each correctly
 * rounded by IEEE 754), so every peer gets the same bits; libm's log() is
 * free to differ in the last place between libcs. x = 2^e * f with f in
 * [sqrt(1/2), sqrt(2)), chosen without a branch (the halving is a coin
 * toss to a predictor); ln f = 2 atanh(s) with s = (f - 1) / (f + 1),
 * |s| < 0.172, summed to s^21 (the next term is below 2^-56 of the sum) in
 * Estrin's order, which halves the chain of dependent operations. Within
 * 1.5 ulp of glibc's log() over 2 * 10^7 samples.
 */
static inline double plc_neg_ln(uint64_t x)
{
	const double ln2_hi = 6.93147180369123816490e-01; /* low bits zero */
	const double ln2_lo = 1.90821492927058770002e-10;
	/* The mantissa of sqrt(2) rounded to a double. */
	const uint64_t sqrt2_mantissa = UINT64_C(0x6a09e667f3bcd);
	int e = 63 - __builtin_clzll(x);
	uint64_t mantissa = (x << (52 - e)) & ((UINT64_C(1) << 52) - 1);
	uint64_t halve = mantissa > sqrt2_mantissa;
	uint64_t bits = mantissa | ((UINT64_C(1023) - halve) << 52);
	double f;
	memcpy(&f, &bits, sizeof(f));
	e += (int)halve;

	double s = (f - 1.0) / (f + 1.0);
	double z = s * s;
	double z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
	/* 1/3 + z/5 + z^2/7 + ... + z^9/21 */
	double p01 = 1.0 / 3 + z * (1.0 / 5), p23 = 1.0 / 7 + z * (1.0 / 9);
	double p45 = 1.0 / 11 + z * (1.0 / 13);
	double p67 = 1.0 / 15 + z * (1.0 / 17);
	double p89 = 1.0 / 19 + z * (1.0 / 21);
	double p = (p01 + z2 * p23) + z4 * (p45 + z2 * p67) + z8 * p89;
	double t = 2.0 * s;
	double ln_f = t + t * (z * p);
	double k = (double)(53 - e);
	return k * ln2_hi - (ln_f - k * ln2_lo);
}

#endif
