/*
 * EC2 Query parameters: the pairs of a query string or an
 * application/x-www-form-urlencoded body, decoded strictly and kept in the
 * order sent, and EC2's list conventions over them (Foo.N, Foo.N.Bar,
 * Filter.N.Name/Value.M) as real clients send them: indexes from 0 or 1,
 * un-indexed members, single values sent indexed.
 */
#include "apiedge_int.h"

#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void api_params_init(struct api_params *p)
{
	p->items = NULL;
	p->n = 0;
	p->cap = 0;
}

void api_params_free(struct api_params *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->items[i].name);
		free(p->items[i].value);
	}
	free(p->items);
	api_params_init(p);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..n) into a fresh string; NULL on a bad escape or a NUL. */
static char *form_decode(const char *s, size_t n, size_t *out_len)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = n - i >= 3 ? hex_digit(s[i + 1]) : -1;
			int lo = n - i >= 3 ? hex_digit(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				free(out);
				return NULL;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == 0) {
			free(out);
			return NULL;
		}
		out[o++] = c;
	}
	out[o] = 0;
	*out_len = o;
	return out;
}

int api_params_parse(struct api_params *p, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *amp = memchr(s + i, '&', n - i);
		size_t end = amp ? (size_t)(amp - s) : n;
		if (end > i) {
			const char *pair = s + i;
			size_t plen = end - i;
			const char *eq = memchr(pair, '=', plen);
			size_t nlen = eq ? (size_t)(eq - pair) : plen;
			if (nlen > API_PARAM_NAME_MAX)
				return -E2BIG;
			if (p->n >= API_PARAMS_MAX)
				return -E2BIG;
			size_t name_len, value_len = 0;
			char *name = form_decode(pair, nlen, &name_len);
			char *value = eq ? form_decode(eq + 1, plen - nlen - 1,
			                               &value_len)
			                 : xstrdup("");
			if (!name || !value) {
				free(name);
				free(value);
				return -EINVAL;
			}
			if (p->n == p->cap) {
				p->cap = p->cap ? 2 * p->cap : 16;
				p->items = xrealloc(p->items,
				                    p->cap * sizeof(*p->items));
			}
			p->items[p->n].name = name;
			p->items[p->n].value = value;
			p->items[p->n].value_len = value_len;
			p->n++;
		}
		i = end + 1;
	}
	return 0;
}

const char *api_params_get(const struct api_params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return p->items[i].value;
	return NULL;
}

/*
 * Splits name against prefix: returns false if name is not a member of the
 * list prefix; else sets *index (API_INDEX_NONE when un-indexed) and *rest
 * (what follows "Prefix.N." or "Prefix.", "" for a simple member).
 */
static bool member_of(const char *name, const char *prefix, long *index,
                      const char **rest)
{
	size_t pl = strlen(prefix);
	if (strncmp(name, prefix, pl) != 0)
		return false;
	const char *s = name + pl;
	if (*s == 0) {
		*index = API_INDEX_NONE;
		*rest = s;
		return true;
	}
	if (*s != '.')
		return false;
	s++;
	if (*s >= '0' && *s <= '9') {
		const char *d = s;
		long v = 0;
		while (*d >= '0' && *d <= '9' && d - s < 9)
			v = v * 10 + (*d++ - '0');
		bool leading_zero = s[0] == '0' && d - s > 1;
		if ((*d == 0 || *d == '.') && !leading_zero) {
			*index = v;
			*rest = *d ? d + 1 : d;
			return **rest || *d == 0;
		}
		return false;
	}
	if (*s == 0)
		return false;
	*index = API_INDEX_NONE;
	*rest = s;
	return true;
}

struct found {
	long index;
	size_t order;
	const char *value;
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

size_t api_params_list(const struct api_params *p, const char *prefix,
                       const char **vals, size_t max)
{
	struct found *f = xmalloc((p->n + 1) * sizeof(*f));
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++) {
		long idx;
		const char *rest;
		if (member_of(p->items[i].name, prefix, &idx, &rest) &&
		    *rest == 0) {
			f[n].index = idx;
			f[n].order = i;
			f[n].value = p->items[i].value;
			n++;
		}
	}
	qsort(f, n, sizeof(*f), found_cmp);
	for (size_t i = 0; i < n && i < max; i++)
		vals[i] = f[i].value;
	free(f);
	return n;
}

static int long_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

size_t api_params_indexes(const struct api_params *p, const char *prefix,
                          long *idx, size_t max)
{
	long *all = xmalloc((p->n + 1) * sizeof(*all));
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++) {
		long v;
		const char *rest;
		if (member_of(p->items[i].name, prefix, &v, &rest) && *rest)
			all[n++] = v;
	}
	qsort(all, n, sizeof(*all), long_cmp);
	size_t distinct = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && all[i] == all[i - 1])
			continue;
		if (distinct < max)
			idx[distinct] = all[i];
		distinct++;
	}
	free(all);
	return distinct;
}

/* "Prefix.N.field" or "Prefix.field" into a fresh string. */
static char *member_name(const char *prefix, long index, const char *field)
{
	if (index == API_INDEX_NONE)
		return xasprintf("%s.%s", prefix, field);
	return xasprintf("%s.%ld.%s", prefix, index, field);
}

const char *api_params_member(const struct api_params *p, const char *prefix,
                              long index, const char *field)
{
	char *name = member_name(prefix, index, field);
	const char *v = api_params_get(p, name);
	free(name);
	return v;
}

size_t api_params_member_list(const struct api_params *p, const char *prefix,
                              long index, const char *field, const char **vals,
                              size_t max)
{
	char *name = member_name(prefix, index, field);
	size_t n = api_params_list(p, name, vals, max);
	free(name);
	return n;
}

/* ---- filters ------------------------------------------------------------ */

void api_filters_free(struct api_filters *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->items[i].values);
	free(f->items);
	f->items = NULL;
	f->n = 0;
}

int api_filters_parse(const struct api_params *p, struct api_filters *out,
                      struct api_error *err)
{
	long idx[API_FILTERS_MAX];
	out->items = NULL;
	out->n = 0;
	size_t n = api_params_indexes(p, "Filter", idx, API_FILTERS_MAX);
	if (n > API_FILTERS_MAX)
		return api_error_set(err, "InvalidParameterValue",
		                     "The request has too many filters.");
	out->items = xcalloc(n + 1, sizeof(*out->items));
	for (size_t i = 0; i < n; i++) {
		struct api_filter *f = &out->items[out->n++];
		f->name = api_params_member(p, "Filter", idx[i], "Name");
		if (!f->name || !*f->name) {
			api_filters_free(out);
			return api_error_set(err, "InvalidParameterValue",
			                     "The filter 'null' is invalid");
		}
		f->values = xcalloc(API_FILTER_VALUES_MAX, sizeof(char *));
		f->n_values =
		    api_params_member_list(p, "Filter", idx[i], "Value",
		                           f->values, API_FILTER_VALUES_MAX);
		if (f->n_values > API_FILTER_VALUES_MAX) {
			api_filters_free(out);
			return api_error_set(err, "InvalidParameterValue",
			                     "The filter has too many values.");
		}
	}
	return 0;
}

bool api_filter_match(const char *pat, const char *s)
{
	/* Iterative glob with one backtrack point: linear-ish, no recursion
	 * for a hostile pattern to exploit. */
	const char *star = NULL, *resume = NULL;
	while (*s) {
		if (*pat == '\\' && pat[1]) {
			if (pat[1] == *s) {
				pat += 2;
				s++;
				continue;
			}
		} else if (*pat == '?') {
			pat++;
			s++;
			continue;
		} else if (*pat == '*') {
			star = ++pat;
			resume = s;
			continue;
		} else if (*pat == *s) {
			pat++;
			s++;
			continue;
		}
		if (!star)
			return false;
		pat = star;
		s = ++resume;
	}
	while (*pat == '*')
		pat++;
	return *pat == 0;
}

bool api_filter_values_match(const struct api_filter *f, const char *value)
{
	for (size_t i = 0; i < f->n_values; i++)
		if (api_filter_match(f->values[i], value))
			return true;
	return false;
}

void api_uri_encode(struct mc_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~') {
			mc_buf_put_u8(out, c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			mc_buf_append(out, e, 3);
		}
	}
}
