/* Query strings and form bodies from clients: decoding, EC2 lists and
 * filters must refuse or accept without crashing, and whatever a value
 * holds, the XML writer must not let markup through. */
#include "apiedge_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_escape(const char *s, size_t n)
{
	struct mc_buf b;
	mc_buf_init(&b);
	api_xml_escape(&b, s, n);
	for (size_t i = 0; i < b.len; i++) {
		uint8_t c = b.data[i];
		if (c == '<' || c == '>' || c == '"' || c == '\'' ||
		    (c < 0x20 && c != '\t' && c != '\n'))
			abort();
	}
	mc_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_params p;
	api_params_init(&p);
	const char *s = (const char *)data;
	if (api_params_parse(&p, s, size) == 0) {
		const char *vals[8];
		long idx[8];
		api_params_list(&p, "InstanceId", vals, 8);
		size_t n = api_params_indexes(&p, "Tag", idx, 8);
		for (size_t i = 0; i < n && i < 8; i++) {
			api_params_member(&p, "Tag", idx[i], "Key");
			api_params_member_list(&p, "Tag", idx[i], "Value", vals,
			                       8);
		}
		struct api_filters f;
		struct api_error err;
		if (api_filters_parse(&p, &f, &err) == 0) {
			for (size_t i = 0; i < f.n; i++)
				api_filter_values_match(&f.items[i],
				                        f.items[i].name);
			api_filters_free(&f);
		}
		for (size_t i = 0; i < p.n; i++) {
			check_escape(p.items[i].value, p.items[i].value_len);
			api_filter_match(p.items[i].name, p.items[i].value);
		}
	}
	api_params_free(&p);
	check_escape(s, size);
	return 0;
}
