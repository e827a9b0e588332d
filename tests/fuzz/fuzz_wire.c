/* Every peer message is msgpack from the network: the validator and the
 * decoder must agree and neither may crash or over-allocate. */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_doc *doc = mc_unpack(data, size);
	if ((doc != NULL) != mc_wire_valid(data, size) && doc)
		abort();
	if (doc) {
		struct mc_buf json;
		mc_buf_init(&json);
		mc_val_to_json(mc_doc_root(doc), &json, false);
		mc_buf_free(&json);
	}
	mc_doc_free(doc);
	return 0;
}
